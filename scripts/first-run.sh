#!/usr/bin/env bash
# Times ./scripts/run.sh on a machine as fresh as this product can tell: a clone of this
# checkout run under a new HOME (no cargo-installed tools, no downloaded crates, no build or
# npm cache) with the same rustup toolchains, until the sign-in page answers. Prints the
# time of each step and in all. Takes a while and both cores; BENCHMARKS.md has a run.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
FRESH="$WORK/home"
mkdir -p "$FRESH/.cargo/bin"
for tool in cargo rustc rustup rustdoc cargo-clippy cargo-fmt rustfmt clippy-driver; do
  ln -s "$HOME/.cargo/bin/$tool" "$FRESH/.cargo/bin/$tool"
done
git clone -q "$ROOT" "$WORK/clone"
PORT=$((20000 + RANDOM % 20000))
LOG="$WORK/run.log"
(
  cd "$WORK/clone"
  export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" HOME="$FRESH" CARGO_HOME="$FRESH/.cargo" \
    PATH="$FRESH/.cargo/bin:/usr/local/bin:/usr/bin:/bin" AI_BATCH_ADDR="127.0.0.1:$PORT"
  unset CARGO_TARGET_DIR
  exec ./scripts/run.sh
) >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
START=$(date +%s)
LAST=""
until curl -fs "http://127.0.0.1:$PORT/sign-in" >/dev/null 2>&1; do
  sleep 5
  kill -0 $PID 2>/dev/null || { echo "run.sh stopped early:"; tail -n 20 "$LOG"; exit 1; }
  STEP="$(grep '==>' "$LOG" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
  if [[ $STEP != "$LAST" ]]; then echo "$(( $(date +%s) - START )) s: ${STEP#*==> }"; LAST="$STEP"; fi
done
echo "page up after $(( $(date +%s) - START )) s"
