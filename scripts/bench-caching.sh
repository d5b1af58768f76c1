#!/usr/bin/env bash
# What prompt caching saves (issue 19): 1,000 risk_report jobs sharing a 20,000-token context
# through the built-in emulator, at hit rates 0.64 (the default), 0.30 and 0.98, with
# 5-minute and 1-hour writes, with and without a priming batch. BENCHMARKS.md records a run.
#   ./scripts/bench-caching.sh [JOBS]
# Costs do not depend on the build profile, so the debug build serves.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
install_build_tools
step "building the server"
cargo leptos build >&2
python3 scripts/bench/caching.py "$(ai_batch_bin debug)" "${1:-1000}"
