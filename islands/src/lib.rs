//! The browser entry point of the pages that hydrate by islands: the loader calls this, then
//! each island's own export (`app`'s `#[island]`s) with its element.

// The islands' exports live in `app`: linked in, so they are exported from this bundle.
use app as _;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
