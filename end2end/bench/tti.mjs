// Time to interactive of a dashboard page in headless Chromium: from navigation start until the
// app marks <body data-hydrated>, the moment clicks start to work. Median of RUNS loads.
// With SERVER_PID set, also the server's CPU a load, each load left open SETTLE_MS (1,500
// unless set) after it is interactive so that the reads its live stream asks for are counted.
// Usage: [SERVER_PID=pid] node end2end/bench/tti.mjs URL TOKEN [RUNS] [PATH]
import { readFileSync } from 'node:fs';
import { signedIn } from './signed_in.mjs';

const [url, token, runs = '10', path = '/jobs'] = process.argv.slice(2);
const pid = process.env.SERVER_PID;
const settle = pid ? Number(process.env.SETTLE_MS ?? 1500) : 0;
/** The server's user and system CPU so far, in clock ticks (fields 14 and 15 of its stat). */
const serverTicks = () => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
};
const { browser, page } = await signedIn(url, token);

const times = [];
const ticksBefore = pid ? serverTicks() : 0;
for (let i = 0; i < Number(runs); i++) {
  await page.goto(`${url}${path}`, { waitUntil: 'commit' });
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true', null, { polling: 'raf' });
  times.push(await page.evaluate(() => performance.now()));
  if (settle) await page.waitForTimeout(settle);
}
// Clock ticks are 10 ms (`getconf CLK_TCK`: 100).
const cpu = pid ? `; server CPU ${(((serverTicks() - ticksBefore) * 10) / times.length).toFixed(1)} ms a load` : '';
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`${path} time to interactive over ${times.length} loads: median ${median.toFixed(0)} ms, min ${times[0].toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms${cpu}`);
await browser.close();
