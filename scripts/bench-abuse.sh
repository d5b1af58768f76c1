#!/usr/bin/env bash
# What issue 17's fixes cost and bought, side by side in one run: the release build of a
# commit before them (BEFORE, default ed4f740) against this checkout's, each on fresh SQLite.
#   ./scripts/bench-abuse.sh          (AFTER_BIN=path skips building this checkout)
# 1. Memory: peak RSS (VmHWM) of a fresh server sent one 32 MB bulk body of zeros (refused,
#    422), or of 134 valid jobs of ~244 KB each (stored, 200); then eight such bodies at once
#    (with /healthz asked meanwhile).
# 2. Webhooks: another owner's delivery delay while 48 deliveries wait on a receiver that never
#    answers (10 s timeout).
# 3. Single enqueue over HTTP (wrk, 16 connections), the two builds alternated after a warm-up
#    round each: req/s, server CPU per request, p99.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench/sides.sh"
BEFORE="${BEFORE:-ed4f740}"
export DURATION="${DURATION:-10s}"
install_build_tools
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
build_sides "$BEFORE"

step "bodies: 32 MB of zeros in one payload, and 128 valid payloads of ~250 KB"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
limit = 32 * 1024 * 1024 - 1024
zeros = (limit - 64) // 2
open(f"{work}/zeros.json", "w").write('{"jobs": [{"job_type": "risk_report", "payload": {"a": [' + "0," * zeros + '0]}}]}')
item = json.dumps({"job_type": "risk_report", "payload": {"a": [0] * 125_000}}, separators=(",", ":"))
count = limit // (len(item) + 1)
open(f"{work}/valid.json", "w").write('{"jobs": [' + ",".join([item] * count) + "]}")
print(f"zeros body {zeros * 2 // 1024 // 1024} MB; valid body {count} jobs of {len(item) // 1024} KB")
PY

# eight BODY: the peak MB of a fresh server sent eight BODY files at once, and how many of the
# /healthz asked meanwhile it answered.
eight() {
  local senders=() answered=0 asked=0
  for _ in $(seq 8); do
    curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      --data-binary @"$1" "$URL/api/v1/batch/enqueue/bulk" &
    senders+=($!)
  done
  while kill -0 "${senders[@]}" 2>/dev/null; do
    asked=$((asked + 1))
    curl -fs -m 1 "$URL/healthz" >/dev/null && answered=$((answered + 1))
    sleep 0.2
  done
  echo "$(peak_mb "$PID"), $answered of $asked"
}
# one BODY: "peak MB (status)" of a fresh server sent BODY once.
one() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary @"$1" "$URL/api/v1/batch/enqueue/bulk")
  echo "$(peak_mb "$PID") ($code)"
}
echo "| build | idle MB | one 32 MB body of zeros (422): peak MB | eight at once: peak MB, /healthz answered | one 32 MB body of valid jobs (200): peak MB | eight at once: peak MB, /healthz answered |"
echo "|---|---|---|---|---|---|"
for which in before after; do
  bin="$BEFORE_BIN"; [[ $which == after ]] && bin="$AFTER_BIN"
  row="| $which"
  start "mem-$which-1" "$bin"; row="$row | $(peak_mb "$PID") | $(one "$WORK/zeros.json")"; kill "$PID"
  start "mem-$which-2" "$bin"; row="$row | $(eight "$WORK/zeros.json")"; kill "$PID"
  start "mem-$which-3" "$bin"; row="$row | $(one "$WORK/valid.json")"; kill "$PID"
  start "mem-$which-4" "$bin"; row="$row | $(eight "$WORK/valid.json") |"; kill "$PID"
  echo "$row"
done

step "webhooks: another owner's delivery while 48 wait on a tarpit"
python3 scripts/bench/receivers.py "$WORK/deliveries.log" >"$WORK/ports" & PIDS+=($!)
for _ in $(seq 50); do [[ -s $WORK/ports ]] && break; sleep 0.1; done
read -r TARPIT FAST <"$WORK/ports"
echo "| build | bob's delay: job completed → delivered |"
echo "|---|---|"
for which in before after; do
  bin="$BEFORE_BIN"; [[ $which == after ]] && bin="$AFTER_BIN"
  start "hooks-$which" "$bin" AI_BATCH_SCHEDULER=true AI_BATCH_AUTO_FLUSH_MIN_JOBS=1 AI_BATCH_POLL_INTERVAL_SECS=1 \
    AI_BATCH_SCHEDULER_TICK_MS=200 AI_BATCH_EMULATOR_DELAY_SECS=1 AI_BATCH_WEBHOOK_ALLOW_HTTP_LOOPBACK=true
  ALICE="$TOKEN"
  BOB="$(DATABASE_URL="sqlite://$WORK/hooks-$which.db" "$bin" token create --user bob --role trader | tail -n 1)"
  for t in "$ALICE" "$BOB"; do curl -fs -X POST -H "Authorization: Bearer $t" "$URL/api/v1/webhooks/secret" >/dev/null; done
  jobs_json=$(python3 -c "import json; print(json.dumps({'jobs': [{'job_type': 'risk_report', 'payload': {'i': i}, 'callback_url': 'http://127.0.0.1:$TARPIT/hook'} for i in range(48)]}))")
  curl -fs -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' -d "$jobs_json" "$URL/api/v1/batch/enqueue/bulk" >/dev/null
  for _ in $(seq 300); do grep -q tarpit "$WORK/deliveries.log" 2>/dev/null && break; sleep 0.1; done
  id=$(curl -fs -H "Authorization: Bearer $BOB" -H 'Content-Type: application/json' \
    -d "{\"job_type\": \"risk_report\", \"payload\": {}, \"callback_url\": \"http://127.0.0.1:$FAST/hook\"}" \
    "$URL/api/v1/batch/enqueue" | python3 -c 'import json, sys; print(json.load(sys.stdin)["job"]["id"])')
  until curl -fs -H "Authorization: Bearer $BOB" "$URL/api/v1/batch/jobs/$id" | grep -q '"status":"completed"'; do sleep 0.05; done
  completed=$(date +%s.%N)
  delay="not delivered within 120 s"
  for _ in $(seq 1200); do
    at=$(awk -v id="msg_$id" '$1 == "fast" && ($3 == id || $3 == "-") {print $2; exit}' "$WORK/deliveries.log")
    if [[ -n $at ]]; then delay="$(awk -v a="$at" -v b="$completed" 'BEGIN {printf "%.1f s", a - b}')"; break; fi
    sleep 0.1
  done
  echo "| $which | $delay |"
  kill "$PID"; : >"$WORK/deliveries.log"
done

step "single enqueue over HTTP, the two builds alternated (wrk -t2 -c16 -d$DURATION)"
# One warm-up round each first: a fresh server's first round is slower whichever build it is.
start "enq-before" "$BEFORE_BIN"; B_URL=$URL; B_TOKEN=$TOKEN; B_PID=$PID
start "enq-after" "$AFTER_BIN"; A_URL=$URL; A_TOKEN=$TOKEN; A_PID=$PID
enqueue_round "$B_URL" "$B_TOKEN" "$B_PID" >/dev/null; enqueue_round "$A_URL" "$A_TOKEN" "$A_PID" >/dev/null
echo "| round | before req/s | before CPU µs/req | before p99 | after req/s | after CPU µs/req | after p99 |"
echo "|---|---|---|---|---|---|---|"
for r in 1 2 3 4; do
  echo "| $r | $(enqueue_round "$B_URL" "$B_TOKEN" "$B_PID") | $(enqueue_round "$A_URL" "$A_TOKEN" "$A_PID") |"
done
