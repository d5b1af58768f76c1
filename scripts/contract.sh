#!/usr/bin/env bash
# The REST contract fuzzed from its own document: starts the built server on a fresh SQLite
# file, checks that /openapi.json is valid OpenAPI 3.1, then runs schemathesis (every check)
# as an admin and as a trader. Then a hostile pass as each, on SQLite and on a PostgreSQL
# database of its own (NUL and very long strings in every body, query and path; the server
# must never answer 5xx). Called by ./scripts/test.sh; EXAMPLES=200 fuzzes longer.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
BIN="${AI_BATCH_BIN:-$(ai_batch_bin debug)}"
EXAMPLES="${EXAMPLES:-40}"
PG_ADMIN="${AI_BATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_DB="aib_contract_$(date +%s)_$RANDOM"
WORK="$(mktemp -d)"
SERVERS=()
cleanup() {
  local status=$?
  kill "${SERVERS[@]}" 2>/dev/null || true
  if ((status != 0)); then
    echo "the servers' warnings and errors (slow answers among them):" >&2
    grep -ah "WARN\|ERROR" "$WORK"/*.log 2>/dev/null | tail -n 40 >&2
  fi
  sleep 0.5
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# serve NAME DATABASE_URL: the server on that database; sets URL, ADMIN and TRADER tokens.
# Rate limits high: the fuzzer should reach the handlers, not spend its cases on 429s (their
# own tests are in server/tests/api/hardening.rs and hostile.rs).
serve() {
  # A random port may be taken: a server that exits at start is tried again on another.
  local port pid up=""
  for _ in 1 2 3; do
    port=$((20000 + RANDOM % 12000))
    URL="http://127.0.0.1:$port"
    DATABASE_URL="$2" AI_BATCH_ADDR="127.0.0.1:$port" AI_BATCH_SCHEDULER=false \
      AI_BATCH_ENQUEUE_PER_SEC=100000 AI_BATCH_READS_PER_SEC=100000 AI_BATCH_AUTH_FAILURES_PER_SEC=0 RUST_LOG=warn \
      "$BIN" serve >>"$WORK/$1.log" 2>&1 &
    pid=$!
    SERVERS+=("$pid")
    for _ in $(seq 600); do
      if curl -fs "$URL/healthz" >/dev/null; then up=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    [[ -n $up ]] && break
  done
  if [[ -z $up ]]; then
    echo "the server did not start; its log:" >&2
    tail -n 30 "$WORK/$1.log" >&2
    exit 1
  fi
  ADMIN="$(grep -A1 'shown only this once' "$WORK/$1.log" | tail -n 1)"
  TRADER="$(DATABASE_URL="$2" "$BIN" token create --user fuzz-trader --role trader | tail -n 1)"
  # Test data: a context every user may name (schemathesis.toml puts it in enqueue bodies).
  local stored
  stored="$(curl -fsS -X POST "$URL/api/v1/batch/contexts" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d '{"name": "contract", "text": "The fuzzers shared brief."}')"
  export CONTRACT_CONTEXT_ID="$(.venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["context"]["context_id"])' <<<"$stored")"
  curl -fsS -X PUT "$URL/api/v1/batch/contexts/$CONTRACT_CONTEXT_ID/shared" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d '{"shared": true}' >/dev/null
}

# fuzz ROLE [schemathesis options…]: one run as that role against $URL. One worker: with two
# threads, Python 3.11.7's `ast` (which Hypothesis calls to describe a lambda) can fail with
# "AST constructor recursion depth mismatch" (CPython gh-106905, fixed in later releases), and
# schemathesis reports that as a flaky runtime error of the operation it was generating for.
fuzz() {
  local token="$ADMIN"; [[ $1 == trader ]] && token="$TRADER"
  shift
  (cd end2end/contract && "$ROOT/.venv/bin/st" run "$URL/openapi.json" \
    --header "Authorization: Bearer $token" --max-examples "$EXAMPLES" --workers 1 --no-color "$@")
}

serve sqlite "sqlite://$WORK/contract.db"

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
  step "schemathesis as $role ($EXAMPLES examples per operation)"
  fuzz "$role" --checks all --seed "${SEED:-20261128}"
done

# The hostile pass: hooks put NUL in strings and make some very long (hostile_hooks.py). The
# coverage phase draws fixed boundary values, not through the hooks (and schemathesis 4.32
# fails inside it with them loaded): this pass is the generated phases.
hostile() {
  for role in admin trader; do
    step "schemathesis, hostile pass as $role on $1: NUL and very long strings everywhere, no 5xx"
    SCHEMATHESIS_HOOKS=hostile_hooks PYTHONPATH=. fuzz "$role" --checks not_a_server_error \
      --phases examples,fuzzing,stateful --seed "${SEED:-20261202}"
  done
}
hostile SQLite
psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB"
serve postgres "${PG_ADMIN%/*}/$PG_DB"
hostile PostgreSQL
