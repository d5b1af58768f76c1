#!/usr/bin/env bash
# The REST contract fuzzed from its own document: starts the built server on a fresh SQLite
# file, checks that /openapi.json is valid OpenAPI 3.1, then runs schemathesis (every check)
# as an admin and as a trader. Called by ./scripts/test.sh; EXAMPLES=200 fuzzes longer.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
BIN="${AI_BATCH_BIN:-$(ai_batch_bin debug)}"
EXAMPLES="${EXAMPLES:-40}"
WORK="$(mktemp -d)"
PORT=$((20000 + RANDOM % 20000))
URL="http://127.0.0.1:$PORT"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Rate limits high: the fuzzer should reach the handlers, not spend its cases on 429s (their
# own test is in server/tests/api/hardening.rs).
DATABASE_URL="sqlite://$WORK/contract.db" AI_BATCH_ADDR="127.0.0.1:$PORT" AI_BATCH_SCHEDULER=false \
  AI_BATCH_ENQUEUE_PER_SEC=100000 AI_BATCH_READS_PER_SEC=100000 RUST_LOG=warn \
  "$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -fs "$URL/healthz" >/dev/null && break; sleep 0.1; done
ADMIN="$(grep -A1 'shown only this once' "$WORK/serve.log" | tail -n 1)"
TRADER="$(DATABASE_URL="sqlite://$WORK/contract.db" "$BIN" token create --user fuzz-trader --role trader | tail -n 1)"

step "/openapi.json is valid OpenAPI 3.1"
curl -fsS "$URL/openapi.json" -o "$WORK/openapi.json"
.venv/bin/python - "$WORK/openapi.json" <<'PY'
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
document = json.load(open(sys.argv[1]))
assert document["openapi"].startswith("3.1"), document["openapi"]
validate(document, cls=OpenAPIV31SpecValidator)
print(f"valid: {len(document['paths'])} paths, {len(document['components']['schemas'])} schemas")
PY

for role in admin trader; do
  token="$ADMIN"; [[ $role == trader ]] && token="$TRADER"
  step "schemathesis as $role ($EXAMPLES examples per operation)"
  (cd end2end/contract && "$ROOT/.venv/bin/st" run "$URL/openapi.json" \
    --header "Authorization: Bearer $token" --checks all --max-examples "$EXAMPLES" --workers 2 \
    --seed "${SEED:-20261128}" --no-color)
done
