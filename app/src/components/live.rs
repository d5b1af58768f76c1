use leptos::prelude::*;

/// A counter that goes up when the server says `topic` changed (server-sent events from
/// `/live`, which the browser reconnects by itself), in the browser only: read it in a
/// resource's source to read again only when there is something new. It goes up too each time
/// the stream opens: what changed between the server rendering the page and the stream's
/// first connection, or while it was reconnecting, was told to nobody.
pub fn live_changes(topic: &'static str) -> RwSignal<u64> {
    use leptos::wasm_bindgen::{JsCast, closure::Closure};
    use send_wrapper::SendWrapper;

    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        let Ok(source) = web_sys::EventSource::new("/live") else {
            return;
        };
        let on_change =
            Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
                let data = event.data().as_string().unwrap_or_default();
                if told_about(&data, topic) {
                    tick.update(|t| *t += 1);
                }
            });
        let _ =
            source.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref());
        let on_open = Closure::<dyn Fn(web_sys::Event)>::new(move |_| tick.update(|t| *t += 1));
        let _ = source.add_event_listener_with_callback("open", on_open.as_ref().unchecked_ref());
        let open = SendWrapper::new((source, on_change, on_open));
        on_cleanup(move || open.take().0.close());
    });
    tick
}

/// Whether a `change` event's data (`{"topics": [...]}`) names `topic`.
fn told_about(data: &str, topic: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["topics"].as_array().map(|t| t.iter().any(|x| x == topic)))
        .unwrap_or(true)
}
