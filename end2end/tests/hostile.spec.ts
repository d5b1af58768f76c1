import { expect, test } from '@playwright/test';
import { createToken, open, signedIn } from './support';

test('the Access page hydrates while the audit log it shows keeps changing', async ({ browser }) => {
  // Fifteen hydrations of the debug bundle: on a busy machine each takes seconds.
  test.setTimeout(180_000);
  const token = createToken('noor', 'admin');
  const { page, problems } = await signedIn(browser, token);
  // Another admin writes audit entries as fast as the server takes them, the whole time
  // (the first one before the page is opened, so the log is never empty).
  const write = (i: number) =>
    page.request.post('/api/v1/admin/tokens', {
      headers: { Authorization: `Bearer ${token}` },
      data: { user: `churn${i % 5}`, role: 'trader' },
    });
  await write(0);
  let writing = true;
  const writer = (async () => {
    for (let i = 1; writing; i++) await write(i);
  })();
  for (let i = 0; i < 15; i++) {
    await open(page, '/admin/access');
    await expect(page.getByTestId('audit-row').first()).toBeVisible();
    // Interactive: the filter works after hydration.
    await page.getByLabel('Action').selectOption('token_create');
    await expect(page.getByTestId('audit-row').first()).toContainText('token_create');
  }
  writing = false;
  await writer;
  expect(problems).toEqual([]);
});

test('a flush confirmation sends what was previewed, and editing voids the preview', async ({ browser }) => {
  const token = createToken('omar', 'admin');
  const { page, problems } = await signedIn(browser, token);
  for (let i = 0; i < 3; i++) {
    await page.request.post('/api/v1/batch/enqueue', {
      headers: { Authorization: `Bearer ${token}` },
      data: { job_type: 'risk_report', payload: { ticker: `BND${i}` }, priority: 100 },
    });
  }
  await open(page, '/admin/batches');
  const maxJobs = page.getByLabel('Max jobs (1–10000)');
  const send = page.getByRole('button', { name: 'Send batch…' });
  await maxJobs.fill('1');
  await page.getByRole('button', { name: 'Preview' }).click();
  await expect(page.getByTestId('flush-preview')).toContainText('1 job would be sent');
  await expect(send).toBeEnabled();
  // Changing a field after the preview: the preview is void, Send waits for a new one.
  await maxJobs.fill('100');
  await expect(send).toBeDisabled();
  await expect(page.getByTestId('flush-preview')).toBeEmpty();
  await maxJobs.fill('1');
  await page.getByRole('button', { name: 'Preview' }).click();
  await expect(page.getByTestId('flush-preview')).toContainText('1 job would be sent');
  let question = '';
  page.once('dialog', (dialog) => {
    question = dialog.message();
    void dialog.accept();
  });
  await send.click();
  await expect(page.getByTestId('flush-result')).toContainText('Submitted 1 job to');
  expect(question).toContain('Send 1 job (');
  expect(problems).toEqual([]);
});
