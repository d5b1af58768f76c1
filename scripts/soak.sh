#!/usr/bin/env bash
# The long fault soak: the suite's soak test (server/tests/api/soak.rs) with thousands of jobs
# and dozens of kill -9s. Random provider faults on 30% of calls throughout; at the end every
# job must be terminal, none billed twice, and the service's books equal to the provider's.
#   JOBS=3000 KILLS=40 SEED=11 ./scripts/soak.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
JOBS="${JOBS:-3000}"
KILLS="${KILLS:-40}"
SEED="${SEED:-$RANDOM}"
step "soak: $JOBS jobs, $KILLS kills, seed $SEED"
AI_BATCH_SOAK_JOBS="$JOBS" AI_BATCH_SOAK_KILLS="$KILLS" AI_BATCH_SOAK_SEED="$SEED" \
  cargo test --locked -p server --test api soak -- --nocapture
