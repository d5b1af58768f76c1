import { expect, test } from '@playwright/test';
import { createToken, screenshotPath, signIn, waitForHydration, watchConsole } from './support';

test('a trader signs in and sees the job they enqueued over REST', async ({ page, request }) => {
  const problems = watchConsole(page);
  const token = createToken('alice', 'trader');
  const enqueued = await request.post('/api/v1/batch/enqueue', {
    headers: { Authorization: `Bearer ${token}` },
    data: { job_type: 'risk_report', payload: { ticker: 'TSLA' }, priority: 77 },
  });
  expect(enqueued.status()).toBe(200);
  const { job } = await enqueued.json();

  // Not signed in: the jobs page sends you to sign in.
  await page.goto('/jobs');
  await expect(page).toHaveURL(/\/sign-in$/);
  await page.screenshot({ path: screenshotPath('sign-in'), fullPage: true });

  await signIn(page, token);
  const row = page.locator(`tr[data-job-id="${job.id}"]`);
  await expect(row).toContainText('Risk report');
  // What the job is about, from its payload, beside its id.
  await expect(row.getByTestId('job-subject')).toHaveText('TSLA');
  await expect(row).toContainText('pending');
  await expect(row).toContainText('77');
  await expect(page.getByTestId('signed-in-as')).toContainText('alice');
  // Tailwind is applied: the status badge has its colour.
  const badge = row.getByText('pending');
  await expect(badge).toHaveCSS('border-radius', /px/);
  expect(await badge.evaluate((el) => getComputedStyle(el).backgroundColor)).not.toBe('rgba(0, 0, 0, 0)');
  await page.screenshot({ path: screenshotPath('jobs'), fullPage: true });

  // Filters live in the URL (a GET form), so they also work without JavaScript.
  await page.getByLabel('Status').selectOption('completed');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/status_filter=completed/);
  await expect(row).toHaveCount(0);
  await page.getByLabel('Status').selectOption('');
  await page.getByLabel('Search: job or batch id, idempotency key, payload text').fill('TSLA');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/q=TSLA/);
  await expect(row).toHaveCount(1);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/sign-in$/);
  await page.goto('/jobs');
  await expect(page).toHaveURL(/\/sign-in$/);
  expect(problems).toEqual([]);
});

test('another trader does not see that job, and a bad token is refused inline', async ({ page }) => {
  const problems = watchConsole(page);
  await page.goto('/sign-in');
  await waitForHydration(page);
  await page.getByLabel('Access token').fill('aib_notarealtoken_value');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('not valid');
  await expect(page).toHaveURL(/\/sign-in$/);

  await signIn(page, createToken('bob', 'trader'));
  await expect(page.getByTestId('job-counts')).toContainText('0 pending');
  await expect(page.locator('tr[data-job-id]')).toHaveCount(0);
  expect(problems).toEqual([]);
});

test('the jobs page is readable with JavaScript off', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const token = createToken('carol', 'trader');
  const res = await page.request.post('/api/v1/batch/enqueue', {
    headers: { Authorization: `Bearer ${token}` },
    data: { job_type: 'sentiment_analysis', payload: { ticker: 'AMD' } },
  });
  const { job } = await res.json();
  await page.goto('/sign-in');
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/jobs$/);
  await expect(page.locator(`tr[data-job-id="${job.id}"]`)).toContainText('News sentiment');
  // Every reading page arrives complete from the server.
  await page.goto(`/jobs/${job.id}`);
  await expect(page.getByTestId('job-status')).toHaveText('pending');
  await expect(page.getByTestId('timeline')).toContainText('created');
  await page.goto('/savings');
  await expect(page.getByTestId('savings-cards')).toContainText('Jobs queued');
  await page.goto('/jobs?q=AMD');
  await expect(page.locator(`tr[data-job-id="${job.id}"]`)).toHaveCount(1);
  await context.close();
});

test('the admin pages are readable with JavaScript off', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/sign-in');
  await page.getByLabel('Access token').fill(createToken('night-ops', 'admin'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/jobs$/);
  await page.goto('/admin/access');
  await expect(page.getByTestId('prices')).toContainText('claude-sonnet-4-5');
  await expect(page.getByTestId('user-row').getByText('night-ops', { exact: true })).toBeVisible();
  await page.goto('/admin/batches');
  await expect(page.getByRole('heading', { name: 'Flush queued jobs' })).toBeVisible();
  await context.close();
});
