import { expect, test } from '@playwright/test';
import { screenshotPath, watchConsole } from './support';

test('the API page renders the document with every script and style from our own origin', async ({ page, baseURL }) => {
  const problems = watchConsole(page);
  const elsewhere: string[] = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol !== 'data:' && url.origin !== new URL(baseURL!).origin) elsewhere.push(request.url());
  });
  const response = await page.goto('/docs');
  expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
  await expect(page.locator('.swagger-ui .info .title')).toContainText('Bitcain AI Batch');
  // The operations of the contract are listed, with the bearer scheme to authorize.
  await expect(page.locator('.opblock-summary-path', { hasText: '/api/v1/batch/enqueue' }).first()).toBeVisible();
  await expect(page.getByRole('button', { name: /Authorize/ })).toBeVisible();
  // Open the enqueue operation: its examples per job type are there.
  await page.locator('.opblock-summary-path', { hasText: /^\/api\/v1\/batch\/enqueue$/ }).click();
  await expect(page.locator('.opblock-body select', { hasText: 'strategy_backtest' }).first()).toBeAttached();
  await page.screenshot({ path: screenshotPath('api-docs'), fullPage: false });
  expect(elsewhere).toEqual([]);
  expect(problems).toEqual([]);
});
