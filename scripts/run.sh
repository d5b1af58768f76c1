#!/usr/bin/env bash
# Builds the release and starts Bitcain AI Batch on SQLite with the built-in Anthropic emulator.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

install_build_tools
step "building the release (the first build takes a few minutes)"
# --precompress: a .br and a .gz beside each site file, sent to browsers that take them.
leptos_build --release --precompress

BIN="$(ai_batch_bin release)"
export AI_BATCH_SITE_ROOT="${AI_BATCH_SITE_ROOT:-$ROOT/target/site}"
ADDR="${AI_BATCH_ADDR:-127.0.0.1:3000}"
cat >&2 <<MSG

  Bitcain AI Batch: open http://$ADDR/ and sign in with an access token.
  On the first start the service prints an admin token below; it is shown only once.
  Lost it, or want one for someone else?
      $BIN token create --user NAME --role trader|admin
  Stop with Ctrl-C.

MSG
exec "$BIN" serve
