//! The small JSON Schema subset our templates use for answers: object (properties, required),
//! string, number, integer, boolean, array (items, minItems, maxItems), enum, minimum, maximum.

use serde_json::Value;

/// Checks `value` against `schema`; the error names the first offending path.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "$")
}

fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        return Err(format!(
            "{path}: {value} is not one of {}",
            Value::Array(choices.clone())
        ));
    }
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    let fits = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !fits {
        return Err(format!("{path}: expected {kind}, found {value}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{path}: {n} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{path}: {n} is above the maximum {max}"));
        }
    }
    match value {
        Value::Object(map) => {
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(name) {
                    return Err(format!("{path}: missing required {name}"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, item) in map {
                if let Some(sub) = properties.and_then(|p| p.get(name)) {
                    check(sub, item, &format!("{path}.{name}"))?;
                }
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            if schema
                .get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|min| count < min)
            {
                return Err(format!("{path}: too few items ({count})"));
            }
            if schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|max| count > max)
            {
                return Err(format!("{path}: too many items ({count})"));
            }
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(sub, item, &format!("{path}[{i}]"))?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_the_subset() {
        let schema = json!({
            "type": "object",
            "required": ["name", "score"],
            "properties": {
                "name": {"type": "string"},
                "score": {"type": "number", "minimum": 0, "maximum": 10},
                "level": {"type": "string", "enum": ["low", "high"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "count": {"type": "integer"},
                "ok": {"type": "boolean"}
            }
        });
        assert!(validate(&schema, &json!({"name": "a", "score": 3.5, "level": "low", "tags": ["x"], "count": 2, "ok": true})).is_ok());
        assert!(
            validate(&schema, &json!({"name": "a"}))
                .unwrap_err()
                .contains("score")
        );
        assert!(validate(&schema, &json!({"name": "a", "score": 11})).is_err());
        assert!(validate(&schema, &json!({"name": "a", "score": 1, "level": "mid"})).is_err());
        assert!(
            validate(
                &schema,
                &json!({"name": "a", "score": 1, "tags": ["a", "b", "c"]})
            )
            .is_err()
        );
        assert!(validate(&schema, &json!({"name": "a", "score": 1, "count": 1.5})).is_err());
        assert!(
            validate(&schema, &json!({"name": 1, "score": 1}))
                .unwrap_err()
                .starts_with("$.name")
        );
    }
}
