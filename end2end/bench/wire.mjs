// Bytes on the wire for the sign-in page, the jobs page and the admin pages, as headless
// Chromium receives them (compressed, headers included), on a first visit (a new browser
// context) and a repeat visit (the same context again): which files came over the network and
// which from its cache.
// Usage: node end2end/bench/wire.mjs URL TOKEN
import { chromium } from 'playwright-core';

const [url, token] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});

/** Loads `path` in `page` until hydrated; returns what crossed the network, file by file. */
async function visit(page, path) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const requests = new Map();
  cdp.on('Network.responseReceived', (e) => {
    const encoding = e.response.headers['content-encoding'] ?? e.response.headers['Content-Encoding'] ?? 'identity';
    requests.set(e.requestId, { url: e.response.url, status: e.response.status, encoding, cached: e.response.fromDiskCache || e.response.fromMemoryCache });
  });
  const fromCache = new Set();
  cdp.on('Network.requestServedFromCache', (e) => fromCache.add(e.requestId));
  const finished = [];
  cdp.on('Network.loadingFinished', (e) => finished.push(e));
  await page.goto(`${url}${path}`);
  await page.waitForFunction(() => document.body.dataset.hydrated === 'true');
  await page.waitForLoadState('networkidle');
  const files = finished
    .filter((e) => requests.has(e.requestId))
    .map((e) => {
      const r = requests.get(e.requestId);
      return { ...r, bytes: e.encodedDataLength, cached: r.cached || fromCache.has(e.requestId) };
    });
  await cdp.detach();
  return files;
}

function report(label, files) {
  const network = files.filter((f) => !f.cached);
  const total = network.reduce((sum, f) => sum + f.bytes, 0);
  console.log(`\n## ${label}: ${total.toLocaleString('en-US')} bytes over the network, ${network.length} of ${files.length} responses`);
  for (const f of files) {
    const name = new URL(f.url).pathname;
    console.log(`  ${f.cached ? 'cache  ' : f.status === 304 ? 'checked' : 'network'} ${String(f.status).padEnd(4)} ${f.encoding.padEnd(8)} ${String(f.bytes).padStart(9)}  ${name}`);
  }
  return total;
}

// The sign-in page, anonymous.
const anonymous = await (await browser.newContext()).newPage();
const signInFirst = report('sign-in, first visit', await visit(anonymous, '/sign-in'));
const signInRepeat = report('sign-in, repeat visit', await visit(anonymous, '/sign-in'));

// The islands pages, signed in as an admin: each in a new context with the session, then the
// same one again.
await anonymous.fill('#token', token);
await anonymous.click('button[type=submit]');
await anonymous.waitForURL(/\/jobs$/);
const cookies = await anonymous.context().cookies();
const rows = [['sign-in', signInFirst, signInRepeat]];
for (const path of ['/jobs', '/admin/batches', '/admin/access']) {
  const fresh = await browser.newContext();
  await fresh.addCookies(cookies);
  const page = await fresh.newPage();
  const first = report(`${path}, first visit`, await visit(page, path));
  rows.push([path, first, report(`${path}, repeat visit`, await visit(page, path))]);
  await fresh.close();
}
console.log(`\n| page | first visit (bytes) | repeat visit (bytes) |\n|---|---|---|`);
for (const [page, first, repeat] of rows) {
  console.log(`| ${page} | ${first.toLocaleString('en-US')} | ${repeat.toLocaleString('en-US')} |`);
}
await browser.close();
