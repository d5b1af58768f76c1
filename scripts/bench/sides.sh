# Two builds side by side in one run, for scripts that compare a commit with this checkout
# (sourced after setup.sh). Sets BEFORE_BIN, AFTER_BIN and, with examples, BEFORE_EXAMPLES and
# AFTER_EXAMPLES; gives start (a server on a fresh database), wrk rounds with the server's CPU
# per request, and peak memory.
#   build_sides COMMIT [--examples]   AFTER_BIN=path skips building this checkout,
#                                     BEFORE_BIN=path skips building COMMIT (a binary kept aside),
#                                     unless --examples asks for COMMIT's examples too

build_sides() {
  local before=$1 examples=${2:-}
  local extra=(); [[ $examples == --examples ]] && extra=(--examples)
  step "building the release of this checkout, and of $before beside it"
  if [[ -z ${AFTER_BIN:-} ]]; then
    cargo build --release --locked -p server --bin ai-batch "${extra[@]}" >&2
    AFTER_BIN="$(ai_batch_bin release)"
  fi
  AFTER_EXAMPLES="$(dirname "$AFTER_BIN")/examples"
  [[ -n ${BEFORE_BIN:-} && -z $examples ]] && return
  local src="$HOME/.cache/bitcain-ai-batch/before-$before"
  local target="$HOME/.cache/bitcain-ai-batch/target-before"
  if [[ ! -d $src ]]; then git worktree add --detach "$src" "$before" >&2; fi
  (cd "$src" && CARGO_TARGET_DIR="$target" cargo build --release --locked -p server --bin ai-batch "${extra[@]}" >&2)
  BEFORE_BIN="$target/release/ai-batch"
  BEFORE_EXAMPLES="$target/release/examples"
}

WORK="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_up() { for _ in $(seq 200); do curl -fs "$1/healthz" >/dev/null 2>&1 && return; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }
export RUST_LOG=warn AI_BATCH_ENQUEUE_PER_SEC=0 AI_BATCH_READS_PER_SEC=0 AI_BATCH_AUTH_FAILURES_PER_SEC=0

# start NAME BIN [VAR=value …]: a server on a fresh SQLite file; sets URL, PID, TOKEN (a trader's).
start() {
  local name=$1 bin=$2; shift 2
  local port=$((20000 + RANDOM % 20000))
  URL="http://127.0.0.1:$port"
  env DATABASE_URL="sqlite://$WORK/$name.db" AI_BATCH_ADDR="127.0.0.1:$port" AI_BATCH_SCHEDULER=false "$@" \
    "$bin" serve >"$WORK/$name.log" 2>&1 &
  PID=$!; PIDS+=("$PID")
  wait_up "$URL"
  TOKEN="$(DATABASE_URL="sqlite://$WORK/$name.db" "$bin" token create --user alice --role trader | tail -n 1)"
}
peak_mb() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
# file_bytes PATH: its size, 0 while it does not exist.
file_bytes() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Server CPU per request (utime + stime from /proc) beside req/s: throughput on a shared 2-core
# machine drifts between rounds, the CPU a request costs much less.
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# enqueue_round URL TOKEN PID: "req/s | µs of CPU per request | p99" of single enqueues
# (CONNECTIONS at once, 16 unless set; DURATION each, 10s unless set).
enqueue_round() {
  local c0 c1 out
  c0=$(cpu_ticks "$3")
  out=$(TOKEN="$2" wrk -t2 -c"${CONNECTIONS:-16}" -d"${DURATION:-10s}" --latency -s scripts/bench/enqueue.lua "$1/api/v1/batch/enqueue")
  c1=$(cpu_ticks "$3")
  awk -v a="$c0" -v b="$c1" -v t="$TCK" '
    /requests in/ {n = $1} /Requests\/sec/ {rps = $2} $1 == "99%" {p99 = $2}
    END {printf "%s | %.0f | %s", rps, (b - a) / t * 1e6 / n, p99}' <<<"$out"
}
