//! What a search of the jobs list means, the same on both stores: the job with that id, the
//! job with that idempotency key, the jobs of the batch with that id, or jobs whose payload's
//! values hold every word of the search (field names are no words, migration 21), each
//! as a word or the start of one, case-insensitively ("nvd" finds NVDA, "vda" does not).
//! Each store indexes the payload's words (SQLite FTS5, PostgreSQL a `tsvector` GIN index).
//! PostgreSQL also keeps a vocabulary of every word the jobs carry and reads a search word as
//! the words it begins, each looked up exactly: GIN answers a prefix with a bitmap of every
//! match, which a common word's capped count paid in full (migration 14). And it keeps, per
//! owner, how many jobs carry each word, up to one past the cap (migration 15): a search of
//! one common word is then known to be capped without reading 10,001 matches to count them.
//! SQLite's word index holds each job's owner and type beside its words (migrations 16 and
//! 18): a trader's count, like an admin's, with or without a type filter, is then read from
//! the index alone, and a type filter narrows the matches before any job is read.
//!
//! A page of a search is read in one of two ways, so that a common word and a rare one are
//! both fast (`sql::jobs`, `Plan`): first the search is tested on the newest
//! `SEARCH_WINDOW` jobs that pass the other filters; when that finds a full page it is the
//! page (every match outside the window is older than all of it). A word too rare to fill a
//! page there has few matches: the word index finds them all and they are sorted, and that
//! read counts them too (no second read of the index for the list's count). Only a word
//! common long ago and rare since costs a sort of many.

use app::api::ListQuery;

/// Counting a search's matches stops past this many; a list then says its count is capped.
pub const SEARCH_COUNT_CAP: i64 = 10_000;
/// How many of the newest jobs a search looks through before it asks the word index for all
/// its matches: a page of 50 found there means a word in more than 1.25% of recent jobs.
pub const SEARCH_WINDOW: i64 = 4_000;
/// Words of a search used; more only slow the index down.
const MOST_WORDS: usize = 8;

/// A search word beginning more of the vocabulary's words than this is looked up as a prefix.
pub const MOST_WORDS_BEGUN: usize = 64;

/// What a search word stands for in the vocabulary (PostgreSQL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WordsBegun {
    /// The words it begins, itself included when a job carries it.
    Words(Vec<String>),
    /// Too many to list: the word as a prefix.
    Prefix(String),
}

impl WordsBegun {
    /// From the words (in order) a vocabulary read found beginning with `word`, at most one
    /// past [`MOST_WORDS_BEGUN`]; `None` when it begins none, so no job matches it.
    pub fn of(word: &str, found: Vec<String>) -> Option<Self> {
        match found.len() {
            0 => None,
            n if n > MOST_WORDS_BEGUN => Some(Self::Prefix(word.to_string())),
            _ => Some(Self::Words(found)),
        }
    }
}

/// The vocabulary's words whose counts of jobs (`search_word_jobs`, PostgreSQL) can say a
/// search's count is capped without counting: a search of one word, listed, and no other
/// filter. Any of them carried by more than the cap of the jobs a user sees means as many
/// matches at least (a job matching by id, key or batch only adds to them).
pub fn words_counted_ahead<'a>(
    filter: &ListQuery,
    begun: &'a [WordsBegun],
) -> Option<&'a [String]> {
    match begun {
        [WordsBegun::Words(words)] if searches_alone(filter) => Some(words),
        _ => None,
    }
}

/// Whether a list has no filter but its search (and whose jobs it shows): no status, type,
/// provider, batch or error text.
pub fn searches_alone(filter: &ListQuery) -> bool {
    filter.job_type.is_none() && filters_in_word_index(filter)
}

/// Whether a list's filters are at most what SQLite's word index holds beside each job's words
/// (its owner and its type): no status, provider, batch or error text.
pub fn filters_in_word_index(filter: &ListQuery) -> bool {
    filter.status_filter.is_none()
        && filter.provider.is_none()
        && filter.batch_id.is_none()
        && filter.error.is_none()
}

/// The least string after every string that begins with `word`, in byte order (which is code
/// point order in UTF-8): its last character's successor. `None` when no character follows.
pub fn prefix_end(word: &str) -> Option<String> {
    let mut chars: Vec<char> = word.chars().collect();
    while let Some(last) = chars.pop() {
        // The next code point that is a character (surrogates are not).
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The words of a search: runs of letters and digits, lower-cased (the stores' tokenizers
/// split the payload the same way).
pub fn search_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MOST_WORDS)
        .map(str::to_lowercase)
        .collect()
}

/// A search's count as the list reports it: at most the cap, and whether it was reached.
/// Stores count up to one past the cap.
pub fn capped_count(counted: i64) -> (i64, bool) {
    (counted.min(SEARCH_COUNT_CAP), counted > SEARCH_COUNT_CAP)
}

/// A `LIKE … ESCAPE '\'` pattern matching `text` anywhere, its own `%`, `_` and `\` taken
/// literally.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_contains_pattern_takes_wildcards_literally() {
        assert_eq!(super::contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    use super::*;

    #[test]
    fn a_prefix_ends_at_its_last_characters_successor() {
        assert_eq!(prefix_end("nvda").as_deref(), Some("nvdb"));
        assert_eq!(prefix_end("z9").as_deref(), Some("z:"));
        assert_eq!(prefix_end("soci\u{e9}").as_deref(), Some("soci\u{ea}"));
        assert_eq!(prefix_end("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(prefix_end("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10ffff}"), None);
        assert_eq!(prefix_end(""), None);
    }

    #[test]
    fn a_word_beginning_too_many_words_is_a_prefix() {
        let found = |n: usize| (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>();
        assert_eq!(WordsBegun::of("w", found(0)), None);
        assert_eq!(
            WordsBegun::of("w", found(2)),
            Some(WordsBegun::Words(found(2)))
        );
        assert_eq!(
            WordsBegun::of("w", found(MOST_WORDS_BEGUN)),
            Some(WordsBegun::Words(found(MOST_WORDS_BEGUN)))
        );
        assert_eq!(
            WordsBegun::of("w", found(MOST_WORDS_BEGUN + 1)),
            Some(WordsBegun::Prefix("w".into()))
        );
    }

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        assert_eq!(search_words("NVDA"), ["nvda"]);
        assert_eq!(
            search_words(" risk-report, Q3_2026 "),
            ["risk", "report", "q3", "2026"]
        );
        assert_eq!(search_words("%_\"*"), Vec::<String>::new());
        assert_eq!(search_words("Société"), ["société"]);
        assert_eq!(search_words(&"a ".repeat(20)).len(), MOST_WORDS);
    }
}
