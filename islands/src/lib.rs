//! The browser entry point of a page that hydrates by islands: the loader calls this, then each
//! island's own export (`app`'s `#[island]`s of the page's feature) with its element.

// The islands' exports live in `app`: linked in, they are exported from this bundle.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    app::hydrate_islands();
}
