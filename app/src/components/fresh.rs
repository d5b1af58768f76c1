use leptos::prelude::*;

use super::explain;

/// Server data an island shows: the last answer read, and why the latest read failed (until
/// one succeeds). A failed read never takes what the page shows away.
pub struct Fresh<T: 'static> {
    pub value: ReadSignal<T>,
    pub failed: ReadSignal<Option<ServerFnError>>,
}

impl<T> Clone for Fresh<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Fresh<T> {}

impl<T: Send + Sync + 'static> Fresh<T> {
    /// Says that what is shown may be out of date, while the latest read has failed.
    pub fn failure_notice(self) -> impl IntoView {
        move || {
            self.failed.get().map(|e| {
                view! {
                    <p role="alert" class="mt-3 text-sm text-rose-700" data-testid="refresh-failed">
                        {format!("Could not refresh: {} What is shown was read before.", explain(&e))}
                    </p>
                }
            })
        }
    }
}

/// What an island shows of server data: `initial` (its prop, read by the server as it rendered
/// the page), then `read`'s answer each time `source` changes, in the browser. Islands get no
/// resources hydrated, so this stands in for one; an answer overtaken by a newer read is dropped.
pub fn kept_fresh<S, T, Fut>(
    initial: T,
    source: impl Fn() -> S + Send + Sync + 'static,
    read: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> Fresh<T>
where
    S: Clone + PartialEq + Send + Sync + 'static,
    T: Send + Sync + 'static,
    Fut: Future<Output = Result<T, ServerFnError>> + 'static,
{
    let (value, set_value) = signal(initial);
    let (failed, set_failed) = signal(None);
    let latest = StoredValue::new(0u64);
    Effect::watch(
        source,
        move |asked: &S, _, _| {
            latest.update_value(|n| *n += 1);
            let this = latest.get_value();
            let answer = read(asked.clone());
            leptos::task::spawn_local(async move {
                let answer = answer.await;
                if latest.get_value() != this {
                    return;
                }
                match answer {
                    Ok(fresh) => {
                        set_value.set(fresh);
                        set_failed.set(None);
                    }
                    Err(e) => set_failed.set(Some(e)),
                }
            });
        },
        false,
    );
    Fresh { value, failed }
}
