#!/usr/bin/env bash
# Builds the dashboard's release WASM bundles and fails if one grew past its budget (gzip -9
# bytes). Each islands page loads its own bundle alone: issue 22's budgets, 150 KB for the jobs
# page, 250 KB for each admin page (Batches, Access). The whole-page bundle (every other page but
# sign-in, which loads none) is a ratchet at today's size plus a little (BENCHMARKS.md has the
# figures). Lower it as the bundle shrinks; raising one is a decision to write down there.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
WHOLE_BUDGET="${WASM_GZIP_BUDGET:-498000}"
JOBS_BUDGET="${JOBS_GZIP_BUDGET:-150000}"
ADMIN_BUDGET="${ADMIN_GZIP_BUDGET:-250000}"

install_build_tools
step "building the release WASM bundles (front only)"
cargo leptos build --release --frontend-only >&2
islands_build --release
over=0
# Each file is named by its content hash (hash-files): the one .wasm of each bundle.
check() { # label file budget
  local raw gzip
  raw="$(stat -c %s "$2")"
  gzip="$(gzip -9 -c "$2" | wc -c)"
  echo "$1: $raw bytes raw, $gzip bytes gzip -9 (budget $3)"
  if ((gzip > $3)); then
    echo "$1 is over its budget by $((gzip - $3)) bytes" >&2
    over=1
  fi
}
check "whole-page bundle (ai-batch.wasm)" "$(ls "$ROOT"/target/site/pkg/ai-batch.*.wasm)" "$WHOLE_BUDGET"
# Every islands page's bundle: the jobs page's within the trader pages' budget, the others
# (the admin pages) within theirs.
for name in $(islands_bundles); do
  budget="$ADMIN_BUDGET"
  [[ $name == jobs ]] && budget="$JOBS_BUDGET"
  check "the $name page's bundle ($name.wasm)" "$(ls "$ROOT"/target/site/pkg/"$name".*.wasm)" "$budget"
done
exit "$over"
