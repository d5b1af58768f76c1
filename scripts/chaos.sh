#!/usr/bin/env bash
# The long chaos run of several instances on PostgreSQL: the suite's chaos test
# (server/tests/chaos/main.rs) with more jobs and more rounds. Each round kills the leader
# mid-flush and mid-ingest (kill -9) and takes PostgreSQL down for six seconds: a private
# cluster the test starts itself (initdb into a temporary directory), never the machine's.
#   JOBS=3000 ROUNDS=5 ./scripts/chaos.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
JOBS="${JOBS:-3000}"
ROUNDS="${ROUNDS:-5}"
step "chaos: $JOBS jobs over three instances, $ROUNDS rounds"
AI_BATCH_CHAOS_JOBS="$JOBS" AI_BATCH_CHAOS_ROUNDS="$ROUNDS" \
  cargo test --locked -p server --test chaos -- --nocapture
