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
