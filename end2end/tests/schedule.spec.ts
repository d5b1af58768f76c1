import { expect, test } from '@playwright/test';
import { createToken, open, screenshotPath, signIn, watchConsole } from './support';

// Issue 21, item 1: "Run after" is typed in the trader's own time; the job waits until then.
test('a New York trader schedules a job in local time: it is stored in UTC and shown on the job page', async ({ browser }) => {
  const token = createToken('nadia', 'trader');
  const context = await browser.newContext({ timezoneId: 'America/New_York' });
  const page = await context.newPage();
  const problems = watchConsole(page);
  await signIn(page, token);
  await open(page, '/jobs/new');

  // 09:08 in New York on 10 December (EST, UTC−5) is 14:08 UTC.
  await page.getByLabel(/Run after/).fill('2026-12-10T09:08');
  await expect(page.getByTestId('run-after-utc')).toContainText('2026-12-10 14:08:00 UTC');
  await page.getByRole('button', { name: 'Queue job' }).click();
  await expect(page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);

  const id = page.url().split('/').pop()!;
  const res = await page.request.get(`/api/v1/batch/jobs/${id}`, { headers: { Authorization: `Bearer ${token}` } });
  const body = await res.json();
  expect((body.job ?? body).run_after).toBe('2026-12-10T14:08:00Z');
  await expect(page.getByTestId('job-run-after')).toContainText('2026-12-10 14:08:00 UTC');
  await page.screenshot({ path: screenshotPath('job-scheduled'), fullPage: true });
  expect(problems).toEqual([]);
});
