use chrono::{DateTime, Utc};

pub use crate::api::money;

/// Times are shown in UTC, the same on the server and in the browser (no hydration mismatch).
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// For amounts the API gives only in USD: back to nano-dollars, then [`money`].
pub fn money_usd(usd: f64) -> String {
    money((usd * 1e9).round() as i64)
}

pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_in_cents_and_in_millionths_below_a_cent() {
        assert_eq!(money(0), "$0.00");
        assert_eq!(money(12_345_000_000), "$12.35");
        assert_eq!(money(1_005_000_000), "$1.01");
        assert_eq!(money(4_560_000), "$0.004560");
        assert_eq!(money(1_499), "$0.000001");
        assert_eq!(money(-250_000_000), "-$0.25");
        assert_eq!(money(-3_000), "-$0.000003");
        // 0.1 + 0.2 in dollars, added as nanos: no floating-point residue.
        assert_eq!(money(100_000_000 + 200_000_000), "$0.30");
        assert_eq!(money_usd(0.3), "$0.30");
    }
}
