# Sourced by scripts/bench-loop.sh and scripts/bench/loop-ab.sh: the standalone emulator and one
# run of `examples/bench_batch_loop` against it.

# start_emulator BIN LOG: an emulator on a random loopback port, answering at once; sets EMULATOR
# (its pid) and EMULATOR_PORT and returns when it answers.
start_emulator() {
  EMULATOR_PORT=$((20000 + RANDOM % 20000))
  "$1" emulator --addr "127.0.0.1:$EMULATOR_PORT" --emulator-delay-secs 0 >"$2" 2>&1 &
  EMULATOR=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$EMULATOR_PORT/_emulator/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "the emulator did not answer on port $EMULATOR_PORT (its log: $2)" >&2
  return 1
}

# batch_loop LOOP DATABASE_URL [bench args]: the bench binary against the running emulator.
batch_loop() {
  local loop=$1 url=$2
  shift 2
  RUST_LOG=warn AI_BATCH_SCHEDULER=false "$loop" --database-url "$url" --provider anthropic \
    --anthropic-base-url "http://127.0.0.1:$EMULATOR_PORT" --anthropic-api-key bench \
    --anthropic-request-timeout-secs 300 "$@"
}

# loop_figure FILE FIELD: one `field=value` of the bench's summary line.
loop_figure() { grep -o "$2=[^ ]*" "$1" | head -1 | cut -d= -f2; }
