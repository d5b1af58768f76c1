use chrono::{DateTime, Utc};
use leptos::prelude::ServerFnError;

pub use crate::api::{Precision, count_of_jobs, money, thousands};

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
    money(nanos(usd))
}

/// A failed call as people read it: the server's own words without the framework's prefix,
/// or what went wrong on the way there.
pub fn explain(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        ServerFnError::Request(_) => {
            "The server could not be reached: check the connection and try again.".to_string()
        }
        // Our server answers every refusal in the encoding this client reads (`web.rs`): an
        // answer it cannot read is most likely from a newer build than this page's.
        ServerFnError::Deserialization(_) => "The service has probably been updated since \
            this page loaded, and its answer could not be read: reload the page."
            .to_string(),
        other => other.to_string(),
    }
}

/// An amount the API gives in USD, back in nano-dollars (its exact stored form).
pub fn nanos(usd: f64) -> i64 {
    (usd * 1e9).round() as i64
}

/// A duration given in hours, in the unit that reads best: "36 s", "4.2 min", "3.1 h".
pub fn hours(h: f64) -> String {
    let secs = h * 3600.0;
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5_400.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{h:.1} h")
    }
}

/// What a set of jobs cost, as shown together so that the figures add up on screen: the
/// three prices are each rounded once, and the savings are differences of rounded prices
/// (paid + saved = standard, by batching + by caching = saved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ledger {
    pub standard: i64,
    /// What the batch price would have been without the provider's cache.
    pub uncached: i64,
    pub paid: i64,
}

impl Ledger {
    /// From what the API reports: paid, and the two kinds of saving.
    pub fn from_savings(paid: i64, by_batching: i64, by_caching: i64) -> Self {
        Self {
            standard: paid + by_caching + by_batching,
            uncached: paid + by_caching,
            paid,
        }
    }

    pub fn amounts(&self) -> [i64; 3] {
        [self.standard, self.uncached, self.paid]
    }

    pub fn rounded(&self, precision: Precision) -> Self {
        Self {
            standard: precision.round(self.standard),
            uncached: precision.round(self.uncached),
            paid: precision.round(self.paid),
        }
    }

    pub fn saved(&self) -> i64 {
        self.standard - self.paid
    }

    pub fn by_batching(&self) -> i64 {
        self.standard - self.uncached
    }

    pub fn by_caching(&self) -> i64 {
        self.uncached - self.paid
    }
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
    use crate::api::{agreeing, count_of};

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
        assert_eq!(money(1_000 * 1_000_000_000), "$1,000.00");
        assert_eq!(money(-1_234_567_890_000_000), "-$1,234,567.89");
    }

    #[test]
    fn a_count_agrees_with_its_number() {
        assert_eq!(count_of_jobs(1), "1 job");
        assert_eq!(count_of_jobs(0), "0 jobs");
        assert_eq!(count_of_jobs(1_234_567), "1,234,567 jobs");
        assert_eq!(count_of(1, "attempt", "attempts"), "1 attempt");
        assert_eq!(count_of(-1, "attempt", "attempts"), "-1 attempts");
        assert_eq!(agreeing(1, "stays", "stay"), "stays");
        assert_eq!(agreeing(2, "stays", "stay"), "stay");
        assert_eq!(thousands(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn a_column_has_one_precision() {
        let column = [20_000_000, 1_488_000, 0];
        let precision = Precision::fitting(column);
        assert_eq!(precision, Precision::Micros);
        let shown: Vec<String> = column.iter().map(|&a| precision.show(a)).collect();
        assert_eq!(shown, ["$0.020000", "$0.001488", "$0.000000"]);
        assert_eq!(Precision::fitting([0, 12_340_000_000]), Precision::Cents);
        assert_eq!(Precision::Cents.show(123_456_789_000_000), "$123,456.79");
        assert_eq!(Precision::Micros.show(-2_500), "-$0.000003");
        // The sign is the shown amount's: "-$0.000000" would not add up in a column.
        assert_eq!(Precision::Micros.show(-400), "$0.000000");
        assert_eq!(money(-400), "$0.000000");
    }

    #[test]
    fn amounts_compared_in_a_sentence_read_differently() {
        // Over a cent each, and one cent apart at most: cents would write both "$0.01".
        assert_eq!(
            Precision::telling_apart([14_900_000, 10_100_000]),
            Precision::Micros
        );
        assert_eq!(
            Precision::telling_apart([16_000_000, 15_500_000, 0]),
            Precision::Micros
        );
        // Cents tell them apart; an amount given twice is one amount.
        assert_eq!(
            Precision::telling_apart([14_900_000, 25_000_000, 25_000_000]),
            Precision::Cents
        );
        // Under a cent: millionths, as for a column.
        assert_eq!(
            Precision::telling_apart([4_000_000, 250_000_000]),
            Precision::Micros
        );
    }

    #[test]
    fn shown_savings_add_up_as_shown() {
        // $0.024 paid + $0.024 saved = $0.048 standard: shown separately they would read
        // $0.02 + $0.02 = $0.05.
        let ledger = Ledger::from_savings(24_000_000, 24_000_000, 0);
        let shown = ledger.rounded(Precision::Cents);
        assert_eq!(shown.paid + shown.saved(), shown.standard);
        assert_eq!(
            (
                Precision::Cents.show(shown.paid),
                Precision::Cents.show(shown.saved()),
                Precision::Cents.show(shown.standard)
            ),
            ("$0.02".into(), "$0.03".into(), "$0.05".into())
        );
        // Every split of every small amount adds up in both precisions.
        for paid in (0..2_000_000_000).step_by(7_777_777) {
            for batching in [0, 4_999_999, 5_000_000, 95_000_001] {
                for caching in [-3_333_333, 0, 6_666_667] {
                    for precision in [Precision::Cents, Precision::Micros] {
                        let s = Ledger::from_savings(paid, batching, caching).rounded(precision);
                        assert_eq!(s.by_batching() + s.by_caching(), s.saved());
                        assert_eq!(s.paid + s.saved(), s.standard);
                    }
                }
            }
        }
    }

    #[test]
    fn counts_and_durations_read_as_people_write_them() {
        assert_eq!(thousands(203_324), "203,324");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-1_000), "-1,000");
        assert_eq!(hours(0.01), "36 s");
        assert_eq!(hours(0.07), "4.2 min");
        assert_eq!(hours(3.12), "3.1 h");
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
