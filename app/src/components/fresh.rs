use leptos::prelude::*;

/// What an island shows of server data: `initial` (its prop, read by the server as it rendered
/// the page), then `read`'s answer each time `source` changes, in the browser. Islands get no
/// resources hydrated, so this stands in for one; an answer overtaken by a newer read is dropped.
pub fn kept_fresh<S, T, Fut>(
    initial: T,
    source: impl Fn() -> S + Send + Sync + 'static,
    read: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> ReadSignal<Result<T, ServerFnError>>
where
    S: Clone + PartialEq + Send + Sync + 'static,
    T: Send + Sync + 'static,
    Fut: Future<Output = Result<T, ServerFnError>> + 'static,
{
    let (value, set_value) = signal(Ok(initial));
    let latest = StoredValue::new(0u64);
    Effect::watch(
        source,
        move |asked: &S, _, _| {
            latest.update_value(|n| *n += 1);
            let this = latest.get_value();
            let answer = read(asked.clone());
            leptos::task::spawn_local(async move {
                let answer = answer.await;
                if latest.get_value() == this {
                    set_value.set(answer);
                }
            });
        },
        false,
    );
    value
}
