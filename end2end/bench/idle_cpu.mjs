// Server CPU while a jobs page sits open and nothing changes, side by side in one run:
// nobody watching; the page open as it is now (told of changes by server-sent events); and
// the same page plus what it did before server push (reading its list every 3 s, replayed
// here as the same list request).
// Usage: node end2end/bench/idle_cpu.mjs URL TOKEN SERVER_PID [SECONDS]
import { readFileSync } from 'node:fs';
import { signedIn } from './signed_in.mjs';

const [url, token, pid, seconds = '60'] = process.argv.slice(2);
const ticksPerSecond = 100; // USER_HZ on Linux

function cpuTicks() {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

async function measure(label, during) {
  const stop = { done: false };
  const before = cpuTicks();
  const started = Date.now();
  const work = during(stop);
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
  stop.done = true;
  await work;
  const cpuSeconds = (cpuTicks() - before) / ticksPerSecond;
  const wall = (Date.now() - started) / 1000;
  console.log(`${label}: ${cpuSeconds.toFixed(2)} s of server CPU in ${wall.toFixed(0)} s (${((100 * cpuSeconds) / wall).toFixed(2)}% of a core)`);
}

const { browser, page: jobs } = await signedIn(url, token);

await jobs.goto('about:blank');
await measure('no page open', async () => {});
await jobs.goto(`${url}/jobs`);
await jobs.waitForFunction(() => document.body.dataset.hydrated === 'true');
await measure('jobs page open, server push', async () => {});
await measure('jobs page open, plus the list read every 3 s it used to make', async (stop) => {
  while (!stop.done) {
    const res = await fetch(`${url}/api/v1/batch/jobs?limit=50`, { headers: { Authorization: `Bearer ${token}` } });
    await res.arrayBuffer(); // an unread body would hold its connection, and node with it
    await new Promise((r) => setTimeout(r, 3000));
  }
});
await browser.close();
// Kept-alive connections would keep node running.
process.exit(0);
