use chrono::{DateTime, Utc};

/// Times are shown in UTC, the same on the server and in the browser (no hydration mismatch).
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn money(usd: f64) -> String {
    if usd != 0.0 && usd.abs() < 0.01 {
        format!("${usd:.6}")
    } else {
        format!("${usd:.2}")
    }
}

pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}
