//! The enqueue form's payload as fields: one control per field the job type's example has (a
//! ticker, headlines one per line, a positions table, …). The JSON text stays the payload the
//! form sends; the fields read it and write it back, so both go through the same validation.

use leptos::prelude::*;
use serde_json::{Map, Value};

use crate::api::JobType;
use crate::api::examples::example_payload;

/// What control a field gets, from the example's value.
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Text,
    Number,
    Flag,
    /// Scalars, one per line.
    Lines {
        numbers: bool,
    },
    /// Objects of scalars: a table with these columns.
    Table(Vec<(String, Shape)>),
    /// An object of scalars: a group of controls.
    Group(Vec<(String, Shape)>),
    /// Anything deeper: its JSON.
    Json,
}

fn shape_of(example: &Value) -> Shape {
    let scalar = |v: &Value| match v {
        Value::String(_) => Some(Shape::Text),
        Value::Number(_) => Some(Shape::Number),
        Value::Bool(_) => Some(Shape::Flag),
        _ => None,
    };
    let columns = |map: &Map<String, Value>| {
        map.iter()
            .map(|(k, v)| Some((k.clone(), scalar(v)?)))
            .collect::<Option<Vec<_>>>()
    };
    match example {
        Value::Array(items) => match items.first() {
            Some(Value::Object(first)) => columns(first).map_or(Shape::Json, Shape::Table),
            Some(Value::Number(_)) => Shape::Lines { numbers: true },
            Some(Value::String(_)) | None => Shape::Lines { numbers: false },
            Some(_) => Shape::Json,
        },
        Value::Object(map) => columns(map).map_or(Shape::Json, Shape::Group),
        other => scalar(other).unwrap_or(Shape::Json),
    }
}

/// "horizon_days" → "Horizon days".
fn label(key: &str) -> String {
    let words = key.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A step into the payload: a key of an object or an index of an array.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn get<'a>(root: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(i),
    })
}

/// Sets the value at `path`, making the objects and array slots on the way.
fn set(root: &mut Value, path: &[Step], value: Value) {
    let Some((step, rest)) = path.split_first() else {
        *root = value;
        return;
    };
    let child = match step {
        Step::Key(k) => {
            if !root.is_object() {
                *root = Value::Object(Map::new());
            }
            root.as_object_mut()
                .expect("an object")
                .entry(k.clone())
                .or_insert(Value::Null)
        }
        Step::Index(i) => {
            if !root.is_array() {
                *root = Value::Array(Vec::new());
            }
            let items = root.as_array_mut().expect("an array");
            if items.len() <= *i {
                items.resize(i + 1, Value::Object(Map::new()));
            }
            &mut items[*i]
        }
    };
    set(child, rest, value);
}

/// A control's text as the value its shape stands for; text that is not a number stays text,
/// for the validation to answer.
fn parse(shape: &Shape, text: &str) -> Value {
    match shape {
        Shape::Number => {
            let text = text.trim();
            text.parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                })
                .unwrap_or_else(|| Value::String(text.to_string()))
        }
        Shape::Lines { numbers } => Value::Array(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| {
                    if *numbers {
                        parse(&Shape::Number, l)
                    } else {
                        Value::String(l.to_string())
                    }
                })
                .collect(),
        ),
        Shape::Json => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        _ => Value::String(text.to_string()),
    }
}

/// A value as its control shows it.
fn show(shape: &Shape, value: Option<&Value>) -> String {
    match (shape, value) {
        (_, None | Some(Value::Null)) => String::new(),
        (_, Some(Value::String(s))) => s.clone(),
        (Shape::Lines { .. }, Some(Value::Array(items))) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("\n"),
        (Shape::Json, Some(v)) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Some(v)) => v.to_string(),
    }
}

/// The fields of `job_type`'s payload, reading and writing `payload` (the JSON text).
#[component]
pub fn PayloadFields(job_type: ReadSignal<JobType>, payload: RwSignal<String>) -> impl IntoView {
    let parsed = Memo::new(
        move |_| match serde_json::from_str::<Value>(&payload.read()) {
            Ok(v @ Value::Object(_)) => Some(v),
            _ => None,
        },
    );
    let edit = move |path: Vec<Step>, value: Value| {
        if let Some(mut root) = parsed.get_untracked() {
            set(&mut root, &path, value);
            payload.set(serde_json::to_string_pretty(&root).unwrap_or_default());
        }
    };
    let value_at = move |path: Vec<Step>, shape: Shape| {
        move || {
            show(
                &shape,
                parsed.read().as_ref().and_then(|root| get(root, &path)),
            )
        }
    };
    let input = "block w-full rounded border border-slate-300 px-2 py-1 text-sm focus:border-emerald-500 focus:outline-none focus:ring-2 focus:ring-emerald-200 disabled:bg-slate-100";
    let control = move |path: Vec<Step>, shape: Shape, name: String| {
        let at = path.clone();
        let on_change = {
            let shape = shape.clone();
            move |ev: leptos::ev::Event| edit(at.clone(), parse(&shape, &event_target_value(&ev)))
        };
        let disabled = move || parsed.read().is_none();
        match shape {
            Shape::Flag => {
                let at = path.clone();
                view! {
                    <input type="checkbox" aria-label=name disabled=disabled
                        prop:checked=move || parsed.read().as_ref().and_then(|r| get(r, &at)).and_then(Value::as_bool).unwrap_or(false)
                        on:change=move |ev| edit(path.clone(), Value::Bool(event_target_checked(&ev))) />
                }
                .into_any()
            }
            Shape::Lines { .. } | Shape::Json => view! {
                <textarea rows="4" aria-label=name class=format!("{input} font-mono") disabled=disabled prop:value=value_at(path, shape) on:change=on_change></textarea>
            }
            .into_any(),
            Shape::Number => view! {
                <input type="text" inputmode="decimal" aria-label=name class=format!("{input} tabular-nums") disabled=disabled prop:value=value_at(path, shape) on:change=on_change />
            }
            .into_any(),
            _ => view! {
                <input type="text" aria-label=name class=input disabled=disabled prop:value=value_at(path, shape) on:change=on_change />
            }
            .into_any(),
        }
    };
    let field = move |key: String, shape: Shape| {
        let path = vec![Step::Key(key.clone())];
        let title = label(&key);
        match shape {
            Shape::Table(columns) => {
                let rows = Memo::new(move |_| {
                    parsed.read().as_ref().and_then(|r| r.get(&key)).and_then(Value::as_array).map_or(0, Vec::len)
                });
                let add_path = path.clone();
                let new_row = Value::Object(
                    columns.iter().map(|(k, s)| (k.clone(), if *s == Shape::Text { Value::from("") } else { Value::from(0) })).collect(),
                );
                let heads = columns.clone();
                let row_title = title.clone();
                view! {
                    <fieldset class="block" data-field=title.clone()>
                        <legend class="text-sm font-medium">{title.clone()}</legend>
                        <table class="mt-1 w-full text-sm">
                            <thead><tr>{heads.iter().map(|(k, _)| view! { <th class="pr-2 text-left text-xs font-medium text-slate-600">{label(k)}</th> }).collect_view()}<th></th></tr></thead>
                            <tbody>
                                <For each=move || 0..rows.get() key=|i| *i let:row>
                                    <tr>
                                        {columns.iter().map(|(column, shape)| {
                                            let mut at = path.clone();
                                            at.extend([Step::Index(row), Step::Key(column.clone())]);
                                            view! { <td class="py-0.5 pr-2">{control(at, shape.clone(), format!("{} {} row {}", row_title, label(column), row + 1))}</td> }
                                        }).collect_view()}
                                        <td>
                                            <button type="button" class="text-xs text-rose-700 underline" aria-label=format!("Remove row {}", row + 1) on:click={
                                                let path = path.clone();
                                                move |_| {
                                                    if let Some(Value::Array(mut items)) = parsed.get_untracked().and_then(|r| get(&r, &path).cloned()) {
                                                        if row < items.len() { items.remove(row); }
                                                        edit(path.clone(), Value::Array(items));
                                                    }
                                                }
                                            }>"Remove"</button>
                                        </td>
                                    </tr>
                                </For>
                            </tbody>
                        </table>
                        <button type="button" class="mt-1 text-sm text-emerald-700 underline" on:click=move |_| {
                            let mut at = add_path.clone();
                            at.push(Step::Index(rows.get_untracked()));
                            edit(at, new_row.clone());
                        }>"Add row"</button>
                    </fieldset>
                }
                .into_any()
            }
            Shape::Group(members) => view! {
                <fieldset class="block" data-field=title.clone()>
                    <legend class="text-sm font-medium">{title.clone()}</legend>
                    <div class="mt-1 grid grid-cols-2 gap-2 sm:grid-cols-4">
                        {members.into_iter().map(|(member, shape)| {
                            let mut at = path.clone();
                            at.push(Step::Key(member.clone()));
                            view! {
                                <label class="block text-xs text-slate-600">{label(&member)}{control(at, shape, format!("{} {}", title, label(&member)))}</label>
                            }
                        }).collect_view()}
                    </div>
                </fieldset>
            }
            .into_any(),
            shape => {
                let hint = matches!(shape, Shape::Lines { .. }).then_some(" (one per line)");
                view! {
                    <div class="block" data-field=title.clone()>
                        <span class="text-sm font-medium">{title.clone()}{hint}</span>
                        {control(path, shape, title.clone())}
                    </div>
                }
                .into_any()
            }
        }
    };
    view! {
        <fieldset class="grid gap-3 rounded border border-slate-200 p-3" data-testid="payload-fields">
            <legend class="px-1 text-sm font-medium">"Payload fields"</legend>
            <Show when=move || parsed.read().is_none()>
                <p role="note" class="text-sm text-amber-800">"The JSON below is not an object yet: fix it there, and the fields follow."</p>
            </Show>
            {move || match example_payload(job_type.get()) {
                Value::Object(example) => example.into_iter().map(|(key, value)| field(key, shape_of(&value))).collect_view().into_any(),
                _ => ().into_any(),
            }}
        </fieldset>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_field_gets_a_control_and_writes_back_what_it_read() {
        for job_type in JobType::ALL {
            let Value::Object(example) = example_payload(*job_type) else {
                panic!("{job_type:?}: the example is an object");
            };
            for (key, value) in example {
                let shape = shape_of(&value);
                if matches!(
                    shape,
                    Shape::Lines { .. } | Shape::Text | Shape::Number | Shape::Json
                ) {
                    let path = [Step::Key(key.clone())];
                    let mut root = Value::Object(Map::new());
                    set(&mut root, &path, parse(&shape, &show(&shape, Some(&value))));
                    assert_eq!(get(&root, &path), Some(&value), "{job_type:?}.{key}");
                }
            }
        }
        assert_eq!(
            shape_of(&serde_json::json!([{"a": 1, "b": "x"}])),
            Shape::Table(vec![("a".into(), Shape::Number), ("b".into(), Shape::Text)])
        );
        assert_eq!(shape_of(&serde_json::json!([[1]])), Shape::Json);
    }

    #[test]
    fn text_that_is_not_a_number_stays_text_for_the_validation() {
        assert_eq!(parse(&Shape::Number, " 12 "), Value::from(12));
        assert_eq!(parse(&Shape::Number, "0.5"), Value::from(0.5));
        assert_eq!(parse(&Shape::Number, "=1+2"), Value::from("=1+2"));
        let mut root = Value::Object(Map::new());
        set(
            &mut root,
            &[
                Step::Key("rows".into()),
                Step::Index(1),
                Step::Key("t".into()),
            ],
            Value::from("X"),
        );
        assert_eq!(root, serde_json::json!({"rows": [{}, {"t": "X"}]}));
    }
}
