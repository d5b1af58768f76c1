import { execFileSync } from 'node:child_process';
import { expect, type Browser, type Page } from '@playwright/test';
import path from 'node:path';
import { aiBatchBin, serverEnv } from '../playwright.config';

/** A token made the way an operator makes one: `ai-batch token create` on the same database. */
export function createToken(user: string, role: 'trader' | 'admin'): string {
  const out = execFileSync(aiBatchBin, ['token', 'create', '--user', user, '--role', role], {
    env: { ...process.env, ...serverEnv },
    encoding: 'utf8',
  });
  return out.trim().split('\n').pop()!.trim();
}

/** Collects console errors and warnings (hydration warnings included); tests assert none. */
export function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  return problems;
}

/** How long a page may take to hydrate: the tests run the debug WASM, which a busy two-core
 * machine compiles and starts in seconds, not the release bundle users load. */
export const HYDRATION_TIMEOUT_MS = 30_000;

/** Clicks before hydration are lost: wait for the app's marker. */
export async function waitForHydration(page: Page) {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true', { timeout: HYDRATION_TIMEOUT_MS });
}

/** Opens a page and waits until it is interactive. */
export async function open(page: Page, path: string) {
  const response = await page.goto(path);
  await waitForHydration(page);
  return response;
}

export async function signIn(page: Page, token: string) {
  await page.goto('/sign-in');
  await waitForHydration(page);
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/jobs$/);
  await waitForHydration(page);
}

export function screenshotPath(name: string): string {
  return path.join(__dirname, '..', 'screenshots', `${name}.png`);
}

/** A browser context of its own, signed in with `token` (on `baseURL` when given). */
export async function signedIn(browser: Browser, token: string, baseURL?: string, viewport?: { width: number; height: number }) {
  const context = await browser.newContext({ ...(baseURL ? { baseURL } : {}), ...(viewport ? { viewport } : {}) });
  const page = await context.newPage();
  const problems = watchConsole(page);
  await signIn(page, token);
  return { context, page, problems };
}
