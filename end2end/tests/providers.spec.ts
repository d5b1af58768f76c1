import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { expect, test } from '@playwright/test';
import { aiBatchBin, databaseUrl, serverEnv } from '../playwright.config';
import { open, screenshotPath, signedIn } from './support';

// A server of its own, configured as an admin routes a job type: sentiment_analysis to
// OpenAI's gpt-4.1-mini (AI_BATCH_ROUTES), everything else on Anthropic. The built-in
// emulator answers both providers.
test.describe('with sentiment_analysis routed to OpenAI', () => {
  const port = 40000 + Math.floor(Math.random() * 10000);
  const baseURL = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    ...serverEnv,
    DATABASE_URL: databaseUrl('providers.db'),
    AI_BATCH_ADDR: `127.0.0.1:${port}`,
    AI_BATCH_ROUTES: 'sentiment_analysis=gpt-4.1-mini',
  };
  let server: ChildProcess | undefined;

  test.beforeAll(async () => {
    server = spawn(aiBatchBin, ['serve'], { env, stdio: 'ignore' });
    for (let i = 0; i < 120; i++) {
      try {
        if ((await fetch(`${baseURL}/healthz`)).ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error('the server did not come up');
  });

  test.afterAll(() => server?.kill('SIGINT'));

  test('a flush sends one batch per provider, both complete, and Savings shows both', async ({ browser }) => {
    const token = (user: string, role: string) =>
      execFileSync(aiBatchBin, ['token', 'create', '--user', user, '--role', role], { env, encoding: 'utf8' }).trim().split('\n').pop()!.trim();
    const traderToken = token('olga', 'trader');
    const admin = await signedIn(browser, token('ops', 'admin'), baseURL);

    // The admin sees where each job type goes.
    await open(admin.page, '/admin/access');
    await expect(admin.page.getByTestId('route-sentiment_analysis')).toContainText('OpenAI');
    await expect(admin.page.getByTestId('route-sentiment_analysis')).toContainText('gpt-4.1-mini');
    await expect(admin.page.getByTestId('route-risk_report')).toContainText('Anthropic');

    // The trader enqueues one job of each kind.
    const trader = await signedIn(browser, traderToken, baseURL);
    const enqueue = async (data: object) => {
      const res = await trader.page.request.post('/api/v1/batch/enqueue', { headers: { Authorization: `Bearer ${traderToken}` }, data });
      expect(res.status()).toBe(200);
      return (await res.json()).job.id as string;
    };
    const sentiment = await enqueue({ job_type: 'sentiment_analysis', payload: { ticker: 'NVDA', headlines: ['Record data-centre sales'] } });
    await enqueue({ job_type: 'risk_report', payload: { ticker: 'NVDA', weight: 0.2 } });

    // Choosing OpenAI alone previews only its share; every provider previews both.
    await open(admin.page, '/admin/batches');
    await admin.page.getByTestId('flush-provider').selectOption('openai');
    await admin.page.getByRole('button', { name: 'Preview' }).click();
    await expect(admin.page.getByTestId('flush-preview')).toContainText('1 job would be sent');
    await expect(admin.page.getByTestId('flush-preview')).toContainText('1 to OpenAI');
    await admin.page.getByTestId('flush-provider').selectOption('');
    await admin.page.getByRole('button', { name: 'Preview' }).click();
    await expect(admin.page.getByTestId('flush-preview')).toContainText('1 to Anthropic, 1 to OpenAI');
    admin.page.once('dialog', (dialog) => dialog.accept());
    await admin.page.getByRole('button', { name: 'Send batch…' }).click();
    await expect(admin.page.getByTestId('flush-result')).toContainText('to Anthropic as batch msgbatch_');
    await expect(admin.page.getByTestId('flush-result')).toContainText('to OpenAI as batch batch_');

    // Both batches end and are collected by the scheduler.
    const batches = admin.page.getByTestId('batches').locator('li');
    await expect(batches).toHaveCount(2);
    await expect(admin.page.locator('li[data-batch-status="ended"]')).toHaveCount(2, { timeout: 30_000 });
    // Newest first: their order follows their creation, not their providers.
    expect((await admin.page.getByTestId('batch-provider').allInnerTexts()).sort()).toEqual(['Anthropic', 'OpenAI']);
    await admin.page.screenshot({ path: screenshotPath('batches-two-providers'), fullPage: true });

    // Each batch says what became of its jobs, and its id lists them.
    const first = batches.first();
    await expect(first.getByTestId('batch-outcomes')).toContainText('Jobs: 1 completed');
    await first.locator('a[title="Its jobs"]').click();
    await expect(admin.page).toHaveURL(/\/jobs\?batch_id=/);
    await expect(admin.page.getByTestId('batch-filter')).toBeVisible();
    await expect(admin.page.locator('tr[data-job-id]')).toHaveCount(1);

    // The trader's job page names its provider and model once it ran.
    await open(trader.page, `/jobs/${sentiment}`);
    await expect(trader.page.getByTestId('job-route')).toContainText('Ran on OpenAI (gpt-4.1-mini)', { timeout: 20_000 });

    // Savings shows both providers' shares.
    await open(trader.page, '/savings');
    await expect(trader.page.getByTestId('provider-anthropic')).toContainText('1 job ·');
    await expect(trader.page.getByTestId('provider-openai')).toContainText('1 job ·');
    await trader.page.screenshot({ path: screenshotPath('savings-two-providers'), fullPage: true });

    expect(admin.problems).toEqual([]);
    expect(trader.problems).toEqual([]);
  });
});
