import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { aiBatchBin, databaseUrl, serverEnv } from '../playwright.config';
import { createToken, open, screenshotPath, signedIn } from './support';

test('an admin caps a trader: the trader sees it, an enqueue over it is refused inline, a flush leaves their jobs', async ({ browser }) => {
  const traderToken = createToken('frank', 'trader');
  const adminToken = createToken('chief', 'admin');
  const auth = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
  const trader = await signedIn(browser, traderToken);
  const admin = await signedIn(browser, adminToken);
  const res = await trader.page.request.post('/api/v1/batch/enqueue', {
    ...auth(traderToken),
    data: { job_type: 'risk_report', payload: { ticker: 'AAPL' } },
  });
  expect(res.status()).toBe(200);
  const waiting = (await res.json()).job.id as string;

  // The admin sets a cap of $0 on the Access page.
  await open(admin.page, '/admin/access');
  const budgets = admin.page.getByTestId('budgets');
  await budgets.getByLabel('User').selectOption('frank');
  await budgets.getByLabel('Cap, USD per month (empty: no cap)').fill('0');
  await budgets.getByRole('button', { name: 'Set budget' }).click();
  await expect(budgets.getByRole('status')).toContainText('Budget of frank saved.');
  const row = budgets.getByTestId('budget-row').filter({ hasText: 'frank' });
  await expect(row).toContainText('$0.00 cap');
  await expect(row).toContainText('over');
  await expect(admin.page.getByTestId('audit-row').first()).toContainText('budget_change');
  await expect(admin.page.getByTestId('audit-row').first()).toContainText('frank');
  await admin.page.screenshot({ path: screenshotPath('access'), fullPage: true });

  // The trader sees it on Savings and on New job, where an enqueue is refused inline.
  await open(trader.page, '/savings');
  await expect(trader.page.getByTestId('budget')).toContainText('$0.00 cap');
  await expect(trader.page.getByTestId('budget')).toContainText('Over budget');
  await trader.page.screenshot({ path: screenshotPath('savings-budget'), fullPage: true });
  await open(trader.page, '/jobs/new');
  await expect(trader.page.getByTestId('budget')).toContainText('pending jobs may cost up to');
  await trader.page.getByRole('button', { name: 'Queue job' }).click();
  await expect(trader.page.getByRole('alert')).toContainText('Over your monthly budget');
  await expect(trader.page).toHaveURL(/\/jobs\/new(\?|$)/);
  await trader.page.screenshot({ path: screenshotPath('enqueue-over-budget'), fullPage: true });

  // The flush preview says the capped trader's job waits, and the flush leaves it pending.
  await open(admin.page, '/admin/batches');
  await admin.page.getByRole('button', { name: 'Preview' }).click();
  await expect(admin.page.getByTestId('flush-preview')).toContainText('1 job of frank stays pending: over their monthly budget');
  const flushed = await admin.page.request.post('/api/v1/batch/internal/flush', { ...auth(adminToken), data: {} });
  expect((await flushed.json()).message).toContain('1 job of frank stays pending');
  const job = await (await trader.page.request.get(`/api/v1/batch/jobs/${waiting}`, auth(traderToken))).json();
  expect(job.status).toBe('pending');
  expect(trader.problems).toEqual([]);
  expect(admin.problems).toEqual([]);
});

test('a refresh that fails keeps the list on screen and says why, until one succeeds', async ({ browser }) => {
  createToken('hugo', 'trader');
  const admin = await signedIn(browser, createToken('warden', 'admin'));
  await open(admin.page, '/admin/access');
  const budgets = admin.page.getByTestId('budgets');
  const setCap = async (usd: string) => {
    await budgets.getByLabel('User').selectOption('hugo');
    await budgets.getByLabel('Cap, USD per month (empty: no cap)').fill(usd);
    await budgets.getByRole('button', { name: 'Set budget' }).click();
  };
  const row = budgets.getByTestId('budget-row').filter({ hasText: 'hugo' });
  await setCap('7');
  await expect(row).toContainText('$7.00 cap');

  // The list's next read is cut off: the new cap is saved, and the list read before stays.
  await admin.page.route('**/api/budgets', (route) => route.abort());
  await setCap('9');
  await expect(budgets.getByRole('status')).toContainText('Budget of hugo saved.');
  await expect(budgets.getByTestId('refresh-failed')).toContainText('Could not refresh');
  await expect(row).toContainText('$7.00 cap');

  // An answer this page cannot read (a newer server's, after a deploy): it says to reload.
  await admin.page.unroute('**/api/budgets');
  await admin.page.route('**/api/budgets', (route) =>
    route.fulfill({ status: 200, contentType: 'application/json', body: '{"budgets": "of a newer shape"}' }),
  );
  await setCap('10');
  await expect(budgets.getByRole('status')).toContainText('Budget of hugo saved.');
  await expect(budgets.getByTestId('refresh-failed')).toContainText(
    'The service has probably been updated since this page loaded, and its answer could not be read: reload the page.',
  );
  await expect(row).toContainText('$7.00 cap');

  await admin.page.unroute('**/api/budgets');
  await setCap('11');
  await expect(row).toContainText('$11.00 cap');
  await expect(budgets.getByTestId('refresh-failed')).toHaveCount(0);
});

test('a job completed through REST shows on an open jobs page without a reload, and an idle page asks nothing', async ({ browser }) => {
  const token = createToken('gina', 'trader');
  const adminToken = createToken('live-ops', 'admin');
  const { page, problems } = await signedIn(browser, token);
  // Quiet first: earlier tests' batches have ended (their results change jobs).
  await expect
    .poll(async () => {
      const res = await page.request.get('/api/v1/batch/internal/batches', { headers: { Authorization: `Bearer ${adminToken}` } });
      const open = ['submitting', 'in_progress', 'canceling'];
      return ((await res.json()).batches as { status: string; results_collected: boolean }[]).filter(
        (b) => open.includes(b.status) || (b.status === 'ended' && !b.results_collected),
      ).length;
    }, { timeout: 30_000 })
    .toBe(0);
  // The last of those results was told to open pages a moment ago (coalesced per 300 ms).
  await page.waitForTimeout(1_500);
  await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
  const listReads: string[] = [];
  // The page reads its rows again as the server renders them (a GET of its own address).
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/jobs') listReads.push(`${r.method()} ${r.url()}`);
  });
  await page.evaluate(() => {
    const told: string[] = [];
    (window as unknown as { told: string[] }).told = told;
    new EventSource('/live').addEventListener('change', (e) => told.push((e as MessageEvent).data));
  });
  await page.waitForTimeout(4_000);
  const told = await page.evaluate(() => (window as unknown as { told: string[] }).told);
  expect(listReads, `an idle jobs page reads nothing (told: ${told.join(' ')})`).toEqual([]);

  const res = await page.request.post('/api/v1/batch/enqueue', {
    headers: { Authorization: `Bearer ${token}` },
    data: { job_type: 'sentiment_analysis', payload: { ticker: 'TSLA', headlines: ['Deliveries beat'] } },
  });
  const id = (await res.json()).job.id as string;
  const row = page.getByTestId('jobs-table').locator('tr', { hasText: id.slice(-8) });
  await expect(row).toContainText('pending', { timeout: 5_000 });
  await page.request.post('/api/v1/batch/internal/flush', { headers: { Authorization: `Bearer ${adminToken}` }, data: {} });
  await expect(row).toContainText('completed', { timeout: 20_000 });
  expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
  await page.screenshot({ path: screenshotPath('jobs-live'), fullPage: true });
  expect(problems).toEqual([]);
});

test('a jobs page reads itself once a visit, and again only when a job changed before its stream opened', async ({ browser }) => {
  const token = createToken('jules', 'trader');
  const { page, problems } = await signedIn(browser, token);
  const auth = { headers: { Authorization: `Bearer ${token}` } };
  const reads: string[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/jobs') reads.push(r.url());
  });
  const streamOpened = () => page.waitForResponse((r) => new URL(r.url()).pathname === '/live');

  // Rendered, then a job enqueued before the page reaches the browser: the page is behind.
  let behind = '';
  await page.route(
    '**/jobs',
    async (route) => {
      const rendered = await route.fetch();
      const res = await page.request.post('/api/v1/batch/enqueue', { ...auth, data: { job_type: 'risk_report', payload: { ticker: 'ORCL' } } });
      behind = (await res.json()).job.id as string;
      await route.fulfill({ response: rendered });
    },
    { times: 1 },
  );
  let opened = streamOpened();
  await open(page, '/jobs');
  await opened;
  const row = page.getByTestId('jobs-table').locator('tr', { hasText: behind.slice(-8) });
  await expect(row).toContainText('pending', { timeout: 5_000 });
  expect(reads, 'the visit, and the read its stream asked for').toHaveLength(2);

  // Cancelled: nothing changes the job after this.
  expect((await page.request.post(`/api/v1/batch/jobs/${behind}/cancel`, { ...auth, data: {} })).status()).toBe(200);
  await expect(row).toContainText('cancelled', { timeout: 5_000 });
  await page.waitForTimeout(1_000);

  reads.length = 0;
  opened = streamOpened();
  await open(page, '/jobs');
  await opened;
  await page.waitForTimeout(2_000);
  expect(reads, 'nothing changed between the render and the stream').toHaveLength(1);
  expect(problems).toEqual([]);
});

test('a job page reads its job again only when a job changed before its stream opened', async ({ browser }) => {
  const token = createToken('juno', 'trader');
  const { page, problems } = await signedIn(browser, token);
  const auth = { headers: { Authorization: `Bearer ${token}` } };
  const enqueue = async (ticker: string) => {
    const res = await page.request.post('/api/v1/batch/enqueue', { ...auth, data: { job_type: 'risk_report', payload: { ticker } } });
    expect(res.status()).toBe(200);
    return (await res.json()).job.id as string;
  };
  // Cancelled: nothing changes this job, and its trader has no other.
  const id = await enqueue('ADBE');
  expect((await page.request.post(`/api/v1/batch/jobs/${id}/cancel`, { ...auth, data: {} })).status()).toBe(200);
  const reads: string[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/load_job') reads.push(r.url());
  });
  const visit = async () => {
    reads.length = 0;
    const opened = page.waitForResponse((r) => new URL(r.url()).pathname === '/live');
    await open(page, `/jobs/${id}`);
    await opened;
  };

  await visit();
  await expect(page.getByTestId('job-status')).toContainText('cancelled');
  await page.waitForTimeout(2_000);
  expect(reads, 'nothing changed between the render and the stream').toHaveLength(0);

  // Rendered, then another job of the trader's enqueued before the page reaches the browser.
  await page.route(
    `**/jobs/${id}`,
    async (route) => {
      const rendered = await route.fetch();
      await enqueue('CRM');
      await route.fulfill({ response: rendered });
    },
    { times: 1 },
  );
  await visit();
  await expect.poll(() => reads.length, { message: 'a job changed before the stream opened: read again', timeout: 5_000 }).toBeGreaterThan(0);
  await expect(page.getByTestId('job-status')).toContainText('cancelled');
  expect(problems).toEqual([]);
});

test('a Batches page reads its batches again only when a batch changed before its stream opened', async ({ browser }) => {
  const token = createToken('bea', 'admin');
  const { page, problems } = await signedIn(browser, token);
  const auth = { headers: { Authorization: `Bearer ${token}` } };
  // Batches earlier tests left in flight would be told as they end and are collected: wait.
  type Listed = { status: string; results_collected: boolean };
  await expect
    .poll(
      async () => {
        const { batches } = await (await page.request.get('/api/v1/batch/internal/batches', auth)).json();
        return batches.filter((b: Listed) => !b.results_collected && !['failed', 'lost'].includes(b.status)).length;
      },
      { timeout: 30_000 },
    )
    .toBe(0);
  await page.waitForTimeout(1_500);
  const reads: string[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/list_batches') reads.push(r.url());
  });
  // The page rendered, then `change` made, then the page handed to the browser.
  const renderedBefore = async (change: () => Promise<void>) => {
    await page.route(
      '**/admin/batches',
      async (route) => {
        const rendered = await route.fetch();
        await change();
        await route.fulfill({ response: rendered });
      },
      { times: 1 },
    );
    reads.length = 0;
    const opened = page.waitForResponse((r) => new URL(r.url()).pathname === '/live');
    await open(page, '/admin/batches');
    await opened;
  };

  await renderedBefore(async () => {
    const res = await page.request.post('/api/v1/batch/enqueue', { ...auth, data: { job_type: 'risk_report', payload: { ticker: 'INTC' } } });
    expect(res.status()).toBe(200);
  });
  await page.waitForTimeout(2_000);
  expect(reads, 'a job changed and no batch did: nothing on this page to read again').toHaveLength(0);

  let batch = '';
  await renderedBefore(async () => {
    const res = await page.request.post('/api/v1/batch/internal/flush', { ...auth, data: {} });
    expect(res.status()).toBe(200);
    batch = (await res.json()).batch_id as string;
  });
  await expect(page.getByTestId('batches')).toContainText(batch, { timeout: 5_000 });
  expect(reads.length, 'the batch sent before the stream opened is read').toBeGreaterThan(0);
  expect(problems).toEqual([]);
});

test('a page whose live stream was down catches up when it connects', async ({ browser }) => {
  const token = createToken('ines', 'trader');
  const { page, problems } = await signedIn(browser, token);
  const res = await page.request.post('/api/v1/batch/enqueue', {
    headers: { Authorization: `Bearer ${token}` },
    data: { job_type: 'risk_report', payload: { ticker: 'AMD' } },
  });
  const id = (await res.json()).job.id as string;
  // The stream cannot connect: what happens meanwhile is told to nobody. (Its address carries
  // the page's version: `/live?since=…`.)
  const stream = (url: URL) => url.pathname === '/live';
  await page.route(stream, (route) => route.abort());
  await open(page, `/jobs/${id}`);
  await expect(page.getByTestId('job-status')).toHaveText('pending');
  const cancelled = await page.request.post(`/api/v1/batch/jobs/${id}/cancel`, {
    headers: { Authorization: `Bearer ${token}` },
    data: {},
  });
  expect(cancelled.status()).toBe(200);
  await page.waitForTimeout(1_000);
  await expect(page.getByTestId('job-status')).toHaveText('pending');
  // Once it connects, the page reads the job again.
  await page.unroute(stream);
  await expect(page.getByTestId('job-status')).toHaveText('cancelled', { timeout: 15_000 });
  // The refused connections are the only console errors.
  expect(problems.filter((p) => !p.includes('net::ERR_FAILED'))).toEqual([]);
});

// A server of its own beside a standalone emulator whose faults the test sets.
test.describe('with a provider that expires every request', () => {
  const port = 40000 + Math.floor(Math.random() * 10000);
  const emulatorPort = port + 1;
  const baseURL = `http://127.0.0.1:${port}`;
  const emulatorURL = `http://127.0.0.1:${emulatorPort}`;
  const env = {
    ...process.env,
    ...serverEnv,
    DATABASE_URL: databaseUrl('retry.db'),
    AI_BATCH_ADDR: `127.0.0.1:${port}`,
    AI_BATCH_PROVIDER: 'anthropic',
    ANTHROPIC_BASE_URL: emulatorURL,
    ANTHROPIC_API_KEY: 'sk-ant-e2e',
    AI_BATCH_MAX_ATTEMPTS: '1',
    AI_BATCH_EMULATOR_ADDR: `127.0.0.1:${emulatorPort}`,
    AI_BATCH_EMULATOR_FAULTS: '{"expired_percent": 100}',
  };
  const children: ChildProcess[] = [];
  // Their warnings and errors (RUST_LOG=warn), shown when a test here fails.
  const log = path.join(process.env.E2E_DB_DIR as string, 'retry-services.log');

  async function ready(url: string) {
    for (let i = 0; i < 120; i++) {
      try {
        if ((await fetch(url)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${url} did not come up`);
  }

  test.beforeAll(async () => {
    const out = () => openSync(log, 'a');
    children.push(spawn(aiBatchBin, ['emulator'], { env, stdio: ['ignore', out(), out()] }));
    await ready(`${emulatorURL}/_emulator/health`);
    children.push(spawn(aiBatchBin, ['serve'], { env, stdio: ['ignore', out(), out()] }));
    await ready(`${baseURL}/healthz`);
  });

  test.afterAll(() => {
    for (const child of children) child.kill('SIGINT');
  });

  test.afterEach(({}, testInfo) => {
    if (testInfo.status !== testInfo.expectedStatus) console.log(`the services' log:\n${readFileSync(log, 'utf8')}`);
  });

  test('an admin retries a failed job from its page and it completes', async ({ browser }) => {
    const token = (user: string, role: string) =>
      execFileSync(aiBatchBin, ['token', 'create', '--user', user, '--role', role], { env, encoding: 'utf8' }).trim().split('\n').pop()!.trim();
    const traderToken = token('hana', 'trader');
    const adminToken = token('ops', 'admin');
    const admin = await signedIn(browser, adminToken, baseURL);
    const api = admin.page.request;
    const enqueued = await api.post(`${baseURL}/api/v1/batch/enqueue`, {
      headers: { Authorization: `Bearer ${traderToken}` },
      data: { job_type: 'risk_report', payload: { ticker: 'NVDA' } },
    });
    const id = (await enqueued.json()).job.id as string;
    const adminAuth = { Authorization: `Bearer ${adminToken}` };
    await api.post(`${baseURL}/api/v1/batch/internal/flush`, { headers: adminAuth, data: {} });

    await open(admin.page, `/jobs/${id}`);
    await expect(admin.page.getByTestId('job-status')).toHaveText('failed', { timeout: 20_000 });
    await expect(admin.page.getByTestId('job-error')).toBeVisible();
    await admin.page.screenshot({ path: screenshotPath('job-failed'), fullPage: true });
    // A failed job is not a dead end: the page says what to do next, to its owner too.
    await expect(admin.page.getByTestId('job-next')).toContainText('Retry job sends it back');
    await expect(admin.page.getByTestId('no-result')).toContainText('the job failed');
    const owner = await signedIn(browser, traderToken, baseURL);
    await open(owner.page, `/jobs/${id}`);
    await expect(owner.page.getByTestId('job-next')).toContainText('queue a new job with the same input');
    await expect(owner.page.getByRole('button', { name: 'Retry job' })).toHaveCount(0);
    await owner.page.getByRole('button', { name: 'Queue it again' }).click();
    await owner.page.getByRole('link', { name: 'a new job' }).click();
    await expect(owner.page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
    expect(owner.page.url()).not.toContain(id);
    await expect(owner.page.getByTestId('job-status')).toHaveText('pending');
    await expect(owner.page.getByTestId('job-payload')).toContainText('NVDA');
    expect(owner.problems).toEqual([]);
    await owner.context.close();

    // The provider recovers; the admin retries from the page and the same job completes.
    await fetch(`${emulatorURL}/_emulator/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
    admin.page.once('dialog', (dialog) => dialog.accept());
    await admin.page.getByRole('button', { name: 'Retry job' }).click();
    await expect(admin.page.getByTestId('job-status')).toHaveText('pending');
    await api.post(`${baseURL}/api/v1/batch/internal/flush`, { headers: adminAuth, data: {} });
    await expect(admin.page.getByTestId('job-status')).toHaveText('completed', { timeout: 20_000 });
    await expect(admin.page.getByTestId('timeline')).toContainText('requeued');

    await open(admin.page, '/admin/access');
    // The log hydrates once its rows have loaded; filter after that.
    await expect(admin.page.getByTestId('audit-row').first()).toBeVisible();
    await admin.page.getByLabel('Action').selectOption('retry');
    await expect(admin.page.getByTestId('audit-row')).toHaveCount(1);
    await expect(admin.page.getByTestId('audit-row')).toContainText(id);
    expect(admin.problems).toEqual([]);
  });

  test('retrying a job that was billed says so and asks to pay again', async ({ browser }) => {
    const token = (user: string, role: string) =>
      execFileSync(aiBatchBin, ['token', 'create', '--user', user, '--role', role], { env, encoding: 'utf8' }).trim().split('\n').pop()!.trim();
    const traderToken = token('ines', 'trader');
    const adminToken = token('ops2', 'admin');
    const admin = await signedIn(browser, adminToken, baseURL);
    const api = admin.page.request;
    // The provider bills the request, and its results line cannot be read: the job fails, billed.
    await fetch(`${emulatorURL}/_emulator/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"malformed_results": {"after_lines": 0, "times": 1}}',
    });
    const enqueued = await api.post(`${baseURL}/api/v1/batch/enqueue`, {
      headers: { Authorization: `Bearer ${traderToken}` },
      data: { job_type: 'risk_report', payload: { ticker: 'AMD' } },
    });
    const id = (await enqueued.json()).job.id as string;
    const adminAuth = { Authorization: `Bearer ${adminToken}` };
    await api.post(`${baseURL}/api/v1/batch/internal/flush`, { headers: adminAuth, data: {} });
    await open(admin.page, `/jobs/${id}`);
    await expect(admin.page.getByTestId('job-status')).toHaveText('failed', { timeout: 20_000 });

    // Declined: nothing happens. Accepted: the job goes back, the new charge confirmed.
    let question = '';
    admin.page.once('dialog', (dialog) => {
      question = dialog.message();
      void dialog.dismiss();
    });
    await admin.page.getByRole('button', { name: 'Retry job' }).click();
    await expect.poll(() => question).toContain('billed');
    expect(question).toContain('pay again');
    await expect(admin.page.getByTestId('job-status')).toHaveText('failed');
    admin.page.once('dialog', (dialog) => dialog.accept());
    await admin.page.getByRole('button', { name: 'Retry job' }).click();
    await expect(admin.page.getByTestId('job-status')).toHaveText('pending');
    const retried = await api.get(`${baseURL}/api/v1/admin/audit?action=retry`, { headers: adminAuth });
    expect(JSON.stringify(await retried.json())).toContain('confirmed to bill again');
    expect(admin.problems).toEqual([]);
  });
});
