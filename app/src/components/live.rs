use leptos::prelude::*;

/// A counter that goes up when the server says `topic` changed (server-sent events from
/// `/live`, which the browser reconnects by itself), in the browser only: read it in a
/// resource's source to read again only when there is something new. `since` is the version
/// the page was rendered from (`server_fns::Versioned`): the stream's first event then says
/// whether anything changed before it opened, or while it was reconnecting. Without one, the
/// counter goes up as the stream opens.
pub fn live_changes(topic: &'static str, since: Option<String>) -> RwSignal<u64> {
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| listen(topic, since.as_deref(), tick));
    tick
}

/// [`live_changes`] for a page whose version arrives with what it shows (a hydrated page's
/// resource, whose source reads `tick`): the stream opens once `since` gives `Some` (the
/// version, or `None` when it could not be read), and stays open whatever `since` gives after.
pub fn live_changes_once_known(
    topic: &'static str,
    tick: RwSignal<u64>,
    since: impl Fn() -> Option<Option<String>> + Send + Sync + 'static,
) {
    Effect::new(move |_| {
        // Read untracked once known, so that nothing runs this again (and closes the stream).
        match untrack(&since) {
            Some(known) => listen(topic, known.as_deref(), tick),
            None => {
                since();
            }
        }
    });
}

/// Opens the stream for the running effect (closed when it is cleaned up).
fn listen(topic: &'static str, since: Option<&str>, tick: RwSignal<u64>) {
    use leptos::wasm_bindgen::{JsCast, closure::Closure};
    use send_wrapper::SendWrapper;

    let address = match since {
        Some(version) => format!("/live?since={}", js_sys::encode_uri_component(version)),
        None => "/live".to_string(),
    };
    let Ok(source) = web_sys::EventSource::new(&address) else {
        return;
    };
    let on_change =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let data = event.data().as_string().unwrap_or_default();
            if told_about(&data, topic) {
                tick.update(|t| *t += 1);
            }
        });
    let _ = source.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref());
    let open = SendWrapper::new((source, on_change));
    on_cleanup(move || open.take().0.close());
}

/// Whether a `change` event's data (`{"topics": [...]}`) names `topic`.
fn told_about(data: &str, topic: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["topics"].as_array().map(|t| t.iter().any(|x| x == topic)))
        .unwrap_or(true)
}
