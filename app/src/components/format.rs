use chrono::{DateTime, Utc};

pub use crate::api::money;

/// Times are shown in UTC, the same on the server and in the browser (no hydration mismatch).
/// Computed by hand: chrono's formatter is a sizeable part of the browser bundle.
pub fn when(at: DateTime<Utc>) -> String {
    let secs = at.timestamp();
    let (days, time) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// For amounts the API gives only in USD: back to nano-dollars, then [`money`].
pub fn money_usd(usd: f64) -> String {
    money((usd * 1e9).round() as i64)
}

/// An id as lists show it: its last 8 characters. Job and batch ids are time-ordered UUIDs
/// whose head is the time (the same for everything made in the same second or so) and whose
/// tail is random, so the tail is what tells them apart.
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars[chars.len().saturating_sub(8)..].iter().collect()
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

    #[test]
    fn short_ids_tell_time_ordered_ids_apart() {
        let (a, b) = (
            "01a236e1-5b2c-7e11-9a3f-8c2d41e07a10",
            "01a236e1-5b2c-7e11-b7d0-3f9e02c4d55e",
        );
        assert_eq!(
            (short_id(a), short_id(b)),
            ("41e07a10".into(), "02c4d55e".into())
        );
        assert_eq!(short_id("ctx_1"), "ctx_1");
    }

    #[test]
    fn times_read_as_chrono_writes_them() {
        // Every day from 1900 to 2200 at a moving time of day, leap days and centuries included.
        let start = DateTime::from_timestamp(-2_208_988_800, 0).unwrap();
        for day in 0..(300 * 366) {
            let at = start + chrono::Duration::seconds(day * 86_400 + day * 7 % 86_400);
            assert_eq!(when(at), at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        }
    }
}
