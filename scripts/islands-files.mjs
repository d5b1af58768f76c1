// An islands bundle's files, named as cargo-leptos names its own (`name.<22 characters of
// base64url MD5>.ext`, which the server keeps a year in browsers), put in the site's pkg
// directory in place of older ones; their hashes go to the file leptos's `HydrationScripts`
// reads beside the server; with --precompress each gets its .br and .gz twin.
//   node scripts/islands-files.mjs NAME BINDGEN_OUT_DIR PKG_DIR HASH_FILE [--precompress]
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const [name, outDir, pkgDir, hashFile, ...flags] = process.argv.slice(2);
const precompress = flags.includes('--precompress');
for (const old of fs.readdirSync(pkgDir)) {
  if (old.startsWith(`${name}.`)) fs.rmSync(path.join(pkgDir, old));
}
const lines = [];
for (const [kind, file] of [['js', `${name}.js`], ['wasm', `${name}_bg.wasm`]]) {
  const body = fs.readFileSync(path.join(outDir, file));
  const hash = createHash('md5').update(body).digest('base64url');
  const dest = path.join(pkgDir, `${name}.${hash}.${kind}`);
  fs.writeFileSync(dest, body);
  lines.push(`${kind}: ${hash}`);
  if (precompress) {
    fs.writeFileSync(`${dest}.gz`, zlib.gzipSync(body, { level: 9 }));
    const quality = { [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY };
    fs.writeFileSync(`${dest}.br`, zlib.brotliCompressSync(body, { params: quality }));
  }
}
fs.mkdirSync(path.dirname(hashFile), { recursive: true });
fs.writeFileSync(hashFile, `${lines.join('\n')}\n`);
