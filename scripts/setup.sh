# Sourced by run.sh and test.sh: installs what the build needs, skipping what is there.
# Pinned versions: see TOOLCHAIN notes in the README (cargo-leptos 0.3.10 is the last that
# builds on Rust 1.95; wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock).

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# One target dir outside the clone, so a fresh clone (CI) builds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bitcain-ai-batch/target}"
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export LEPTOS_OUTPUT_NAME=ai-batch

step() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

install_build_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
  # The two tools compile from source and npm and the crate downloads wait on the network:
  # all at once, each cargo install in its own target dir (a shared one would lock).
  local tools="$HOME/.cache/bitcain-ai-batch/tools" pids=()
  if ! cargo leptos --version 2>/dev/null | grep -q '0\.3\.10'; then
    # A debug build of the tool: it only drives cargo, wasm-bindgen and Tailwind, so its own
    # speed does not show, and it compiles in half the time of a release build.
    step "installing cargo-leptos 0.3.10 (a few minutes, once)"
    # Its project generator vendors OpenSSL; the system's, where its headers are installed,
    # spares compiling it (the generator is a part of the tool we never run).
    local system_openssl=0
    pkg-config --exists openssl 2>/dev/null && system_openssl=1
    OPENSSL_NO_VENDOR=$system_openssl CARGO_PROFILE_DEV_DEBUG=0 cargo install cargo-leptos --version 0.3.10 --locked \
      --features no_downloads --debug --target-dir "$tools/cargo-leptos" &
    pids+=($!)
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q '0\.2\.129'; then
    step "installing wasm-bindgen-cli 0.2.129"
    # Without its default TLS stack: only its test runner's WebDriver client would use it.
    cargo install wasm-bindgen-cli --version 0.2.129 --locked --no-default-features \
      --target-dir "$tools/wasm-bindgen" &
    pids+=($!)
  fi
  if [[ ! -x node_modules/.bin/tailwindcss || package-lock.json -nt node_modules/.package-lock.json ]]; then
    step "installing npm packages (Tailwind, wasm-opt, Swagger UI, Playwright)"
    npm ci --no-audit --no-fund &
    pids+=($!)
  fi
  if ((${#pids[@]})); then
    step "downloading the crates the build needs, meanwhile"
    cargo fetch --locked &
    pids+=($!)
  fi
  local failed=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if ((failed)); then
    echo "installing the build tools failed: see the messages above" >&2
    return 1
  fi
  rm -rf "$tools"
  # The API page's assets, served from our own origin (cargo-leptos copies public/ into the site).
  local vendor=public/docs/vendor
  if [[ ! -f $vendor/swagger-ui-bundle.js || node_modules/swagger-ui-dist/package.json -nt $vendor/swagger-ui-bundle.js ]]; then
    mkdir -p "$vendor"
    cp node_modules/swagger-ui-dist/{swagger-ui-bundle.js,swagger-ui.css,LICENSE} "$vendor/"
  fi
}

install_test_tools() {
  # The gates: rustup's default profile has both; a minimal one gets them here.
  for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
      step "adding the $component component"
      rustup component add "$component"
    fi
  done
  if [[ ! -x /usr/bin/chromium ]]; then
    step "installing Chromium from Debian"
    if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
}

install_python_venv() {
  local stamp=.venv/.requirements
  if [[ ! -x .venv/bin/python ]] || ! cmp -s end2end/sdk/requirements.txt "$stamp"; then
    step "creating the Python venv for the SDK tests"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r end2end/sdk/requirements.txt
    cp end2end/sdk/requirements.txt "$stamp"
  fi
}

# `cargo leptos build "$@"`, the WASM and the server at once: with content-hashed file names
# (hash-files) cargo-leptos builds one after the other, though neither needs the other (the
# server reads the names at run time), and the WASM's long link leaves a core idle.
leptos_build() {
  { cargo leptos build --frontend-only "$@" && islands_build "$@"; } &
  local front=$!
  local server=0
  cargo leptos build --server-only "$@" || server=$?
  wait "$front" && return "$server"
}

# The islands bundles: the `islands` crate's features, one per page in `app::ISLAND_PAGES`.
islands_bundles() {
  sed -n '/^\[features\]/,/^\[/s/^\([a-z_-]*\) = .*/\1/p' "$ROOT/islands/Cargo.toml"
}

# Builds each islands bundle: the `islands` crate with the page's feature: cargo-leptos builds one browser library,
# so this builds these as it builds the first, in its front target directory (every crate they
# share compiled once: `leptos` reads LEPTOS_OUTPUT_NAME, exported above as cargo-leptos sets
# it, at compile time), then wasm-bindgen, wasm-opt for the release, and hashed names with each
# hash file beside the server (scripts/islands-files.mjs).
#   islands_build [--release] [--precompress]
islands_build() {
  local profile=dev out=debug bin=debug precompress=() arg name
  for arg in "$@"; do
    case $arg in
      --release) profile=wasm-release out=wasm-release bin=release ;;
      --precompress) precompress=(--precompress) ;;
    esac
  done
  local front="$CARGO_TARGET_DIR/front" bindgen
  for name in $(islands_bundles); do
    cargo build --locked -p islands --features "$name" --lib --target wasm32-unknown-unknown \
      --target-dir "$front" --profile "$profile" >&2
    bindgen="$(mktemp -d)"
    wasm-bindgen --target web --no-typescript --out-name "$name" --out-dir "$bindgen" \
      "$front/wasm32-unknown-unknown/$out/islands.wasm"
    if [[ $bin == release ]]; then
      wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
        "$bindgen/${name}_bg.wasm" -o "$bindgen/${name}_bg.wasm"
    fi
    node "$ROOT/scripts/islands-files.mjs" "$name" "$bindgen" "$ROOT/target/site/pkg" \
      "$CARGO_TARGET_DIR/$bin/$name-hash.txt" "${precompress[@]}"
    rm -rf "$bindgen"
  done
}

ai_batch_bin() {
  echo "$CARGO_TARGET_DIR/$1/ai-batch"
}
