// The peer of the PostgreSQL enqueue benchmark: pg-boss send() with the same concurrency as
// wrk's connections, for the same time, on the same database, with a payload like ours.
//   node send.mjs postgres://… 20 16
import PgBoss from 'pg-boss';

const [url, seconds = '20', concurrency = '16'] = process.argv.slice(2);
const boss = new PgBoss({
  connectionString: url,
  max: Number(concurrency) + 2,
  supervise: false,
  schedule: false,
});
boss.on('error', (e) => console.error(e));
await boss.start();
await boss.createQueue('bench');

// The body wrk sends to our enqueue (scripts/bench/enqueue.lua).
const job = { job_type: 'risk_report', payload: { ticker: 'AAPL', positions: [{ symbol: 'AAPL', qty: 120 }] }, priority: 60 };
const deadline = Date.now() + Number(seconds) * 1000;
const latencies = [];
async function sender() {
  while (Date.now() < deadline) {
    const started = performance.now();
    await boss.send('bench', job);
    latencies.push(performance.now() - started);
  }
}
await Promise.all(Array.from({ length: Number(concurrency) }, sender));
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.floor(q * (latencies.length - 1))].toFixed(2);
console.log(
  `pg-boss send(): ${latencies.length} jobs in ${seconds} s = ${(latencies.length / Number(seconds)).toFixed(0)} jobs/s, ` +
    `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms (${concurrency} concurrent senders)`,
);
await boss.stop({ graceful: false, wait: false });
process.exit(0);
