#!/usr/bin/env bash
# Bytes on the wire for the sign-in, jobs and admin pages, first and repeat visit, as the release
# build serves them (precompressed assets, content-hashed names, cache headers; issue 22).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
install_build_tools
install_test_tools
step "building the release, assets precompressed"
leptos_build --release --precompress >&2
BIN="$(ai_batch_bin release)"
WORK="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
export DATABASE_URL="sqlite://$WORK/wire.db" AI_BATCH_SITE_ROOT="$ROOT/target/site" RUST_LOG=warn AI_BATCH_SCHEDULER=false
AI_BATCH_ADDR="127.0.0.1:$PORT" "$BIN" serve >"$WORK/server.log" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN="$("$BIN" token create --user wire-admin --role admin | tail -n 1)"
echo "# bench-wire.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
ls -l "$ROOT"/target/site/pkg/ | awk 'NR > 1 {print $5, $9}'
node end2end/bench/wire.mjs "http://127.0.0.1:$PORT" "$TOKEN"
