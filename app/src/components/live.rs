use std::time::Duration;

use leptos::prelude::*;

/// A counter that goes up every `every` in the browser (never on the server), for resources
/// that should refresh themselves: read it in their source.
pub fn live_ticker(every: Duration) -> RwSignal<u64> {
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || tick.update(|t| *t += 1), every) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}
