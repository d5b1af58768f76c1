import { readFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { createToken, signIn, watchConsole } from './support';

test('the jobs page downloads a CSV of its filter that matches the API', async ({ page, request }) => {
  const problems = watchConsole(page);
  const token = createToken('erin', 'trader');
  const headers = { Authorization: `Bearer ${token}` };
  const ids: string[] = [];
  for (const ticker of ['AAPL', 'MSFT', 'NVDA']) {
    const res = await request.post('/api/v1/batch/enqueue', { headers, data: { job_type: 'risk_report', payload: { ticker } } });
    expect(res.status()).toBe(200);
    ids.push((await res.json()).job.id);
  }
  await request.post(`/api/v1/batch/jobs/${ids[0]}/cancel`, { headers });

  await signIn(page, token);
  await page.goto('/jobs?status_filter=pending');
  await expect(page.getByTestId('job-counts')).toContainText('2');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
  expect(download.suggestedFilename()).toBe('jobs.csv');
  const lines = readFileSync(await download.path(), 'utf8').trim().split('\n');
  expect(lines[0]).toContain('id,job_type,status');
  const exported = lines.slice(1).map((line) => line.split(',')[0]).sort();

  const api = await (await request.get('/api/v1/batch/jobs?status_filter=pending', { headers })).json();
  expect(exported).toEqual(api.jobs.map((job: { id: string }) => job.id).sort());
  expect(exported).toEqual([ids[1], ids[2]].sort());
  expect(problems).toEqual([]);
});

test('the jobs list pages older and newer by cursor, with its filter, JavaScript on or off', async ({ browser, page, request }) => {
  const problems = watchConsole(page);
  const token = createToken('paging-trader', 'trader');
  const headers = { Authorization: `Bearer ${token}` };
  const jobs = Array.from({ length: 120 }, (_, n) => ({ job_type: 'risk_report', payload: { ticker: 'PGNG', n } }));
  const bulk = await request.post('/api/v1/batch/enqueue/bulk', { headers, data: { jobs } });
  expect(bulk.status()).toBe(200);
  const api = await (await request.get('/api/v1/batch/jobs?q=PGNG&limit=120', { headers })).json();
  const newestFirst: string[] = api.jobs.map((job: { id: string }) => job.id);
  expect(newestFirst).toHaveLength(120);
  // Cancelled at once: listed all the same, and never in another test's flush.
  const cancelled = await request.post('/api/v1/batch/jobs/cancel', { headers, data: { job_ids: newestFirst } });
  expect((await cancelled.json()).cancelled).toBe(120);

  const rows = (p: typeof page) => p.getByTestId('jobs-table').locator('tbody tr a[href^="/jobs/"]');
  const walk = async (p: typeof page) => {
    await p.goto('/jobs?q=PGNG');
    await expect(p.getByTestId('job-counts')).toContainText('showing 1–50 of 120');
    await expect(rows(p).first()).toHaveAttribute('href', `/jobs/${newestFirst[0]}`);
    await p.getByRole('link', { name: 'Older →' }).click();
    await expect(p).toHaveURL(/cursor=/);
    await expect(p.getByTestId('job-counts')).toContainText('showing 51–100 of 120');
    await expect(rows(p).first()).toHaveAttribute('href', `/jobs/${newestFirst[50]}`);
    await p.getByRole('link', { name: 'Older →' }).click();
    await expect(p.getByTestId('job-counts')).toContainText('showing 101–120 of 120');
    await expect(rows(p).last()).toHaveAttribute('href', `/jobs/${newestFirst[119]}`);
    await expect(p.getByRole('link', { name: 'Older →' })).toHaveCount(0);
    await p.getByRole('link', { name: '← Newer' }).click();
    await expect(p.getByTestId('job-counts')).toContainText('showing 51–100 of 120');
    await expect(rows(p).first()).toHaveAttribute('href', `/jobs/${newestFirst[50]}`);
    await p.getByRole('link', { name: '← Newer' }).click();
    await expect(p.getByTestId('job-counts')).toContainText('showing 1–50 of 120');
    await expect(rows(p).first()).toHaveAttribute('href', `/jobs/${newestFirst[0]}`);
    await expect(p.getByRole('link', { name: '← Newer' })).toHaveCount(0);
  };

  await signIn(page, token);
  await walk(page);
  expect(problems).toEqual([]);

  const noScript = await browser.newContext({ javaScriptEnabled: false });
  const cookies = await page.context().cookies();
  await noScript.addCookies(cookies);
  await walk(await noScript.newPage());
  await noScript.close();
});
