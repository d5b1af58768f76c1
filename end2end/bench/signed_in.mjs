// Headless Chromium signed in to the dashboard: what the bench scripts start from.
import { chromium } from 'playwright-core';

/** A browser and a page signed in at `url` with `token`, on the jobs page. */
export async function signedIn(url, token) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${url}/sign-in`);
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true');
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/jobs$/);
  return { browser, page };
}
