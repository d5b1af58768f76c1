import AxeBuilder from '@axe-core/playwright';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { createToken, open, screenshotPath, signedIn, waitForHydration, watchConsole } from './support';

// Every page as a trader and an admin see it, on a desk and on a phone.
const DESK = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

async function enqueue(request: APIRequestContext, token: string, data: object): Promise<string> {
  const answer = await request.post('/api/v1/batch/enqueue', { headers: auth(token), data });
  expect(answer.status()).toBe(200);
  return (await answer.json()).job.id;
}

async function waitForStatus(request: APIRequestContext, token: string, id: string, status: string) {
  await expect
    .poll(async () => (await (await request.get(`/api/v1/batch/jobs/${id}`, { headers: auth(token) })).json()).status, {
      timeout: 30_000,
    })
    .toBe(status);
}

/** axe's serious and critical findings on the page as it is now (WCAG 2.x A and AA). */
async function seriousViolations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

/** How far the page is wider than its viewport (0 when it fits). */
async function overflow(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

/** A money figure as whole units of its last digit: "$1,234.50" → 123450 (and its decimals). */
function units(shown: string): { units: number; decimals: number } {
  const match = shown.trim().match(/^(-?)\$([0-9,]+)\.([0-9]+)$/);
  expect(match, `money as shown: ${shown}`).not.toBeNull();
  const [, sign, whole, fraction] = match!;
  const value = Number(whole.replace(/,/g, '') + fraction);
  return { units: sign ? -value : value, decimals: fraction.length };
}

async function figure(page: Page, scope: string, label: string): Promise<string> {
  const card = page.getByTestId(scope).locator('div.rounded-lg', { hasText: label }).first();
  return (await card.locator('div').nth(1).innerText()).trim();
}

test('a new trader is told what the product does and where to start', async ({ browser }) => {
  const signIn = await browser.newPage();
  await open(signIn, '/sign-in');
  await expect(signIn.locator('main')).toContainText('half the price');
  await expect(signIn.locator('main')).not.toContainText('token create');
  await expect(signIn.locator('main')).toContainText('Ask an admin');
  await signIn.close();

  const { context, page, problems } = await signedIn(browser, createToken('newcomer', 'trader'));
  const empty = page.getByTestId('jobs-empty');
  await expect(empty).toContainText('half the standard price');
  await expect(empty).toContainText('24 hours');
  await empty.getByRole('link', { name: 'Queue your first job' }).click();
  await expect(page).toHaveURL(/\/jobs\/new$/);
  await waitForHydration(page);
  // Job types by their names, each with a line saying what it gives back.
  const types = page.getByLabel('Job type');
  await expect(types.locator('option').first()).toHaveText('Portfolio summary');
  await types.selectOption('sentiment_analysis');
  await expect(page.getByTestId('job-type-description')).toContainText('headlines');
  // The page you are on is marked in the navigation.
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New job' })).toHaveAttribute('aria-current', 'page');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' })).not.toHaveAttribute('aria-current');
  // Filters that match nothing say so and lead back.
  await open(page, '/jobs?q=nothing-has-this-word');
  // The first Tab on a page reaches the skip link.
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
  await expect(page.getByTestId('jobs-empty')).toContainText('No jobs match these filters');
  expect(problems).toEqual([]);
  await context.close();
});

test('messages speak the product, not the framework', async ({ browser, request }) => {
  const traderToken = createToken('words-trader', 'trader');
  const trader = await signedIn(browser, traderToken);

  // A bad job link.
  await open(trader.page, '/jobs/01a236e1-0000-7000-8000-000000000000');
  await expect(trader.page.getByRole('alert')).toContainText('Job not found');
  await expect(trader.page.locator('main')).not.toContainText('server function');

  // A reused idempotency key: refused beside the field, the way REST answers 409.
  await open(trader.page, '/jobs/new');
  await trader.page.getByLabel('Idempotency key (optional)').fill('words-key-1');
  await trader.page.getByRole('button', { name: 'Queue job' }).click();
  await expect(trader.page).toHaveURL(/\/jobs\/[0-9a-f-]{36}$/);
  await open(trader.page, '/jobs/new');
  await trader.page.getByLabel('Job type').selectOption('risk_report');
  await trader.page.getByLabel('Idempotency key (optional)').fill('words-key-1');
  await trader.page.getByRole('button', { name: 'Queue job' }).click();
  await expect(trader.page.locator('[data-error="idempotency_key"]')).toContainText('already used for a different request');
  await expect(trader.page.locator('main')).not.toContainText('server function');
  await expect(trader.page).toHaveURL(/\/jobs\/new$/);

  // An admin copies a new token: the page says it was copied.
  const adminToken = createToken('words-admin', 'admin');
  const admin = await signedIn(browser, adminToken);
  await admin.context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await open(admin.page, '/admin/access');
  await admin.page.getByLabel('User (created if new)').fill('words-new-user');
  await admin.page.getByRole('button', { name: 'Create token' }).click();
  await admin.page.getByTestId('new-token').getByRole('button', { name: 'Copy' }).click();
  await expect(admin.page.getByTestId('copied')).toHaveText('Copied');
  const copied = await admin.page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toMatch(/^aib_/);

  // The trader's token is revoked: the next page says why they are signing in again.
  const tokenId = traderToken.split('_')[1];
  const revoked = await request.delete(`/api/v1/admin/tokens/${tokenId}`, { headers: auth(adminToken) });
  expect(revoked.status()).toBe(200);
  await trader.page.goto('/jobs');
  await expect(trader.page).toHaveURL(/\/sign-in\?ended=1$/);
  await expect(trader.page.getByTestId('session-ended')).toContainText('revoked');
  expect(trader.problems).toEqual([]);
  expect(admin.problems).toEqual([]);
  await trader.context.close();
  await admin.context.close();
});

test('money on screen adds up, one precision to a column, with separators', async ({ browser, request }) => {
  const traderToken = createToken('ledger-trader', 'trader');
  const adminToken = createToken('ledger-admin', 'admin');
  const ids = [];
  for (const ticker of ['NVDA', 'AAPL', 'MSFT']) {
    ids.push(await enqueue(request, traderToken, { job_type: 'risk_report', payload: { ticker, positions: [{ ticker, weight_pct: 100 }] } }));
  }
  await request.post('/api/v1/batch/internal/flush', { headers: auth(adminToken), data: {} });
  for (const id of ids) await waitForStatus(request, traderToken, id, 'completed');

  const { context, page, problems } = await signedIn(browser, traderToken);
  await open(page, `/jobs/${ids[0]}`);
  const paid = units(await figure(page, 'job-figures', 'Cost paid'));
  const standard = units(await figure(page, 'job-figures', 'Standard cost'));
  const saved = units(await figure(page, 'job-figures', 'Saved'));
  const batching = units(await figure(page, 'job-cache', 'Saved by batching'));
  const caching = units(await figure(page, 'job-cache', 'Saved by caching'));
  for (const f of [standard, saved, batching, caching]) expect(f.decimals).toBe(paid.decimals);
  expect(paid.units + saved.units).toBe(standard.units);
  expect(batching.units + caching.units).toBe(saved.units);
  expect(paid.units).toBeGreaterThan(0);
  const tokensIn = await figure(page, 'job-figures', 'Tokens in');
  expect(tokensIn).toMatch(/^\d{1,3}(,\d{3})*$/);

  // The jobs list: the cost column in one precision.
  await open(page, '/jobs');
  const costs = await page.locator('tr[data-job-id] td:nth-child(8)').allInnerTexts();
  expect(costs.length).toBe(3);
  expect(new Set(costs.map((c) => units(c).decimals)).size).toBe(1);

  // Savings: paid + saved on the cards, and the two sources add up to what was saved.
  await open(page, '/savings');
  const cardPaid = units(await figure(page, 'savings-cards', 'Cost paid'));
  const cardSaved = units(await figure(page, 'savings-cards', 'Saved in all'));
  const bar = async (id: string) => units((await page.getByTestId(id).locator('div').last().innerText()).trim());
  const [fromBatching, fromCaching] = [await bar('saved-by-batching'), await bar('saved-by-caching')];
  expect(fromBatching.units + fromCaching.units).toBe(cardSaved.units);
  expect(fromBatching.decimals).toBe(cardPaid.decimals);
  await expect(page.getByTestId('savings-cards')).not.toContainText('Avg. hours');
  await expect(page.getByTestId('savings-cards')).toContainText('Average time to result');
  // Rows of the breakdown add up across their columns: paid + by batching + by caching = standard.
  for (const row of await page.getByTestId('by-type').locator('tbody tr').all()) {
    const cells = await row.locator('td').allInnerTexts();
    const [rowPaid, rowStandard, rowBatching, rowCaching] = cells.slice(2, 6).map((c) => units(c).units);
    expect(rowPaid + rowBatching + rowCaching).toBe(rowStandard);
  }
  expect(problems).toEqual([]);
  await context.close();
});

// One test a screen size: both in one took close to its three minutes on a slow machine.
for (const [device, viewport] of [['desk', DESK], ['phone', PHONE]] as const) {
  test(`every page fits a ${device}, passes axe, and is photographed`, async ({ browser, request }) => {
    test.setTimeout(180_000);
    const traderToken = createToken('tour-trader', 'trader');
    const adminToken = createToken('tour-admin', 'admin');
    const done = await enqueue(request, traderToken, { job_type: 'strategy_backtest', payload: { strategy: 'momentum_12_1', universe: ['AAPL', 'NVDA'] } });
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    await request.post('/api/v1/batch/internal/flush', { headers: auth(adminToken), data: {} });
    await waitForStatus(request, traderToken, done, 'completed');
    const scheduled = await enqueue(request, traderToken, { job_type: 'portfolio_summary', payload: { portfolio_id: 'PF-TOUR' }, run_after: tomorrow });

    // The scheduled job says when it goes, when it should be back, and what it may cost.
    const trader = await signedIn(browser, traderToken);
    await open(trader.page, `/jobs/${scheduled}`);
    const next = trader.page.getByTestId('job-next');
    await expect(next).toContainText('Scheduled: not sent before');
    await expect(next).toContainText('Expected back around');
    await expect(next).toContainText('cost at most $');
    await trader.context.close();

    const pages: [string, string][] = [
      ['jobs', '/jobs'],
      ['new-job', '/jobs/new'],
      ['job-completed', `/jobs/${done}`],
      ['job-scheduled', `/jobs/${scheduled}`],
      ['contexts', '/contexts'],
      ['savings', '/savings'],
      ['batches', '/admin/batches'],
      ['access', '/admin/access'],
      ['not-found', '/no-such-page'],
    ];
    const findings: string[] = [];
    const anonymous = await browser.newContext({ viewport });
    const signInPage = await anonymous.newPage();
    const problems = watchConsole(signInPage);
    await open(signInPage, '/sign-in');
    findings.push(...(await seriousViolations(signInPage)).map((v) => `sign-in (${device}): ${v}`));
    if ((await overflow(signInPage)) > 0) findings.push(`sign-in (${device}): ${await overflow(signInPage)} px too wide`);
    await signInPage.screenshot({ path: screenshotPath(`${device}-sign-in`), fullPage: true });
    await anonymous.close();

    const admin = await signedIn(browser, adminToken, undefined, viewport);
    for (const [name, path] of pages) {
      await open(admin.page, path);
      await admin.page.waitForLoadState('networkidle');
      findings.push(...(await seriousViolations(admin.page)).map((v) => `${name} (${device}): ${v}`));
      const wider = await overflow(admin.page);
      if (wider > 0) findings.push(`${name} (${device}): ${wider} px wider than the screen`);
      if (name === 'jobs') {
        // Cost and Cancel stay on the screen, not in the table's scroll.
        const row = admin.page.locator(`tr[data-job-id="${scheduled}"]`);
        for (const part of [row.locator('td:nth-child(8)'), row.getByRole('button', { name: 'Cancel' })]) {
          const box = (await part.boundingBox())!;
          if (box.x + box.width > viewport.width) findings.push(`jobs (${device}): ${await part.innerText()} is off the screen`);
        }
      }
      await admin.page.screenshot({ path: screenshotPath(`${device}-${name}`), fullPage: true });
    }
    // The one 404 is the not-found page's own answer.
    const notFound = 'error: Failed to load resource: the server responded with a status of 404 (Not Found)';
    expect([...problems, ...admin.problems].filter((p) => p !== notFound)).toEqual([]);
    await admin.context.close();
    expect(findings).toEqual([]);
  });
}
