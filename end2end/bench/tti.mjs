// Time to interactive of the jobs page in headless Chromium: from navigation start until the
// app marks <body data-hydrated>, the moment clicks start to work. Median of RUNS loads.
// Usage: node end2end/bench/tti.mjs URL TOKEN [RUNS]
import { signedIn } from './signed_in.mjs';

const [url, token, runs = '10'] = process.argv.slice(2);
const { browser, page } = await signedIn(url, token);

const times = [];
for (let i = 0; i < Number(runs); i++) {
  await page.goto(`${url}/jobs`, { waitUntil: 'commit' });
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true', null, { polling: 'raf' });
  times.push(await page.evaluate(() => performance.now()));
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`jobs page time to interactive over ${times.length} loads: median ${median.toFixed(0)} ms, min ${times[0].toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms`);
await browser.close();
