import { expect, test, type Page } from '@playwright/test';
import { createToken, open, screenshotPath, signIn, waitForHydration, watchConsole } from './support';

/** About `tokens` tokens of a research note (four characters a token). */
function researchNote(tokens: number): string {
  const sentence = 'Rates held steady while energy rallied; semis beat on margins. ';
  return sentence.repeat(Math.ceil((tokens * 4) / sentence.length));
}

async function flushEverything(admin: Page, jobs: number) {
  const count = jobs === 1 ? '1 job' : `${jobs} jobs`;
  await open(admin, '/admin/batches');
  await admin.getByRole('button', { name: 'Preview' }).click();
  await expect(admin.getByTestId('flush-preview')).toContainText(`${count} would be sent`);
  admin.once('dialog', (dialog) => dialog.accept());
  await admin.getByRole('button', { name: 'Send batch…' }).click();
  await expect(admin.getByTestId('flush-result')).toContainText(`Submitted ${count} to`);
}

test('a trader uploads a context, jobs share it, and the savings say what the cache saved', async ({ browser }) => {
  const token = createToken('casey', 'trader');
  const traderContext = await browser.newContext();
  const trader = await traderContext.newPage();
  const problems = watchConsole(trader);
  await signIn(trader, token);
  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await signIn(admin, createToken('ops-cache', 'admin'));

  // Upload: the form shows the size and token estimate before sending.
  await trader.getByRole('link', { name: 'Contexts' }).first().click();
  await expect(trader).toHaveURL(/\/contexts$/);
  // Jobs, where sign-in lands, hydrates by islands: Contexts is a full page load.
  await waitForHydration(trader);
  await trader.getByLabel('Name').fill('Risk methodology');
  const note = researchNote(6000);
  const tokens = Math.ceil(note.length / 4).toLocaleString('en-US');
  await trader.getByLabel('Text (at most 1 MiB), or a file below').fill(note);
  await expect(trader.getByText(`${note.length.toLocaleString('en-US')} bytes, about ${tokens} tokens`)).toBeVisible();
  await trader.getByRole('button', { name: 'Upload context' }).click();
  await expect(trader.getByRole('status')).toContainText(`Context stored: about ${tokens} tokens`);
  const row = trader.getByTestId('context-row').filter({ hasText: 'Risk methodology' });
  await expect(row).toContainText('0 / 0');
  await trader.screenshot({ path: screenshotPath('contexts'), fullPage: true });

  // The first job from the form, picking the context; its flush writes the cache.
  await trader.getByRole('link', { name: 'New job' }).first().click();
  await trader.getByLabel('Job type').selectOption('risk_report');
  await trader.getByTestId('context-picker').selectOption({ label: `Risk methodology (about ${tokens} tokens)` });
  await trader.getByRole('button', { name: 'Queue job' }).click();
  await expect(trader).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
  const firstJob = trader.url();
  await flushEverything(admin, 1);
  await expect(trader.getByTestId('job-status')).toHaveText('completed', { timeout: 20_000 });
  await expect(trader.getByTestId('job-cache')).toContainText(/Tokens written to cache\s*[1-9]\d{0,2}(,\d{3})+/);

  // Two more carry it over the REST API; their flush reads what the first wrote.
  const list = await trader.request.get('/api/v1/batch/contexts', { headers: { Authorization: `Bearer ${token}` } });
  const contextId = (await list.json()).contexts[0].context_id as string;
  const later = [] as string[];
  for (const ticker of ['AMD', 'INTC']) {
    const res = await trader.request.post('/api/v1/batch/enqueue', {
      headers: { Authorization: `Bearer ${token}` },
      data: { job_type: 'risk_report', payload: { ticker }, context_id: contextId },
    });
    expect(res.status()).toBe(200);
    later.push((await res.json()).job.id);
  }
  // While they wait, the context cannot go.
  await open(trader, '/contexts');
  await expect(row).toContainText('2 / 3');
  trader.once('dialog', (dialog) => dialog.accept());
  await row.getByRole('button', { name: 'Delete' }).click();
  await expect(trader.getByTestId('context-refused')).toContainText('jobs');

  await flushEverything(admin, 2);
  await open(trader, `/jobs/${later[0]}`);
  await expect(trader.getByTestId('job-status')).toHaveText('completed', { timeout: 20_000 });
  const cache = trader.getByTestId('job-cache');
  await expect(cache).toContainText(/Tokens read from cache\s*[1-9]\d{0,2}(,\d{3})+/);
  await trader.screenshot({ path: screenshotPath('job-cache'), fullPage: true });

  // The savings page shows both sources, and the hit rate of risk reports.
  await trader.getByRole('link', { name: 'Savings' }).click();
  await expect(trader.getByTestId('saved-by-caching')).toBeVisible();
  const caching = await trader.getByTestId('saved-by-caching').locator('div').last().innerText();
  expect(Number(caching.replace(/[^0-9.]/g, ''))).toBeGreaterThan(0);
  expect(caching.startsWith('-')).toBe(false);
  await expect(trader.getByTestId('savings-sources')).toContainText('hit rate');
  await expect(trader.getByTestId('by-type').locator('tr', { hasText: 'Risk report' })).toContainText('%');
  await trader.screenshot({ path: screenshotPath('savings-caching'), fullPage: true });
  expect(problems).toEqual([]);
  await traderContext.close();
  await adminContext.close();
});
