//! Where the two databases' SQL differs, side by side: every fragment the store's one set of
//! statements (`store::sql`) asks of its engine. Everything else is written once.

use app::api::JobType;

use super::Query;
use crate::store::search::WordsBegun;
use crate::store::sql::rows::local_batch_named;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Whether writers run concurrently and must lock the rows they decide on (PostgreSQL);
    /// on SQLite one writer at a time is the lock.
    pub const fn locks_rows(self) -> bool {
        matches!(self, Self::Postgres)
    }

    /// Whether the store keeps a vocabulary of the jobs' words (`search_words`, PostgreSQL):
    /// SQLite's word index reads a prefix as fast as a word.
    pub const fn keeps_vocabulary(self) -> bool {
        matches!(self, Self::Postgres)
    }

    /// A search's words among one owner's jobs, where the word index holds each job's owner
    /// (SQLite, migration 16, as the hex of the owner's id: one token, in a column no search
    /// word reads): FTS5 intersects the two, no job read to check whose it is.
    pub fn owned_words(self, words: &WordMatch, owner_id: &str) -> Option<WordMatch> {
        match self {
            Self::Sqlite => Some(WordMatch::new(format!(
                "{} AND owner : \"{}\"",
                words.fts_query(),
                hex::encode(owner_id)
            ))),
            Self::Postgres => None,
        }
    }

    /// Chunks of one batch's results written at once, each in its own transaction: two on
    /// PostgreSQL, whose backend runs one while this process prepares the other; one on
    /// SQLite, whose one writer a second would only queue for, ahead of enqueues.
    pub const fn result_writers(self) -> usize {
        match self {
            Self::Sqlite => 1,
            Self::Postgres => 2,
        }
    }

    /// Items bound one placeholder each (`IN (?, …)`) per statement: SQLite's limit on binds.
    pub const fn items_per_statement(self) -> usize {
        match self {
            Self::Sqlite => 500,
            Self::Postgres => 10_000,
        }
    }

    /// After a `SELECT … ORDER BY …` that claims rows of `alias`: what keeps two transactions
    /// from claiming the same ones.
    pub fn skip_locked(self, alias: &str) -> String {
        match self {
            Self::Sqlite => String::new(),
            Self::Postgres => format!(" FOR UPDATE OF {alias} SKIP LOCKED"),
        }
    }

    /// After `UPDATE jobs … FROM <set> WHERE jobs.id = <set>.id`, the claim's guard: jobs
    /// another transaction holds (another instance's claim, a cancel) are skipped, locked in
    /// id order so two claims never deadlock. Nothing on SQLite, where the claim is the only
    /// writer.
    pub fn claimable(self, set: &str) -> String {
        match self {
            Self::Sqlite => String::new(),
            Self::Postgres => format!(
                " AND jobs.id IN (SELECT j.id FROM jobs j JOIN {set} s ON s.id = j.id \
                 WHERE j.status = 'pending' ORDER BY j.id FOR UPDATE OF j SKIP LOCKED)"
            ),
        }
    }

    /// At the end of a sub-`SELECT` that checks a row exists: what keeps a concurrent
    /// transaction from deleting it before this one commits (a shared row lock on PostgreSQL;
    /// on SQLite the one writer at a time is the lock).
    pub const fn share_lock(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR SHARE OF c",
        }
    }

    /// The greater of two expressions.
    pub fn greatest(self, a: &str, b: &str) -> String {
        match self {
            Self::Sqlite => format!("MAX({a}, {b})"),
            Self::Postgres => format!("GREATEST({a}, {b})"),
        }
    }

    /// The UTC day (days since the epoch) of a time column, as an integer (SQLite keeps
    /// times as integer microseconds).
    pub fn day_of(self, column: &str) -> String {
        match self {
            Self::Sqlite => format!("({column} / 86400000000)"),
            Self::Postgres => {
                format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 86400) AS BIGINT)")
            }
        }
    }

    /// Microseconds from one time column to another, as an integer.
    pub fn micros_between(self, from: &str, to: &str) -> String {
        match self {
            Self::Sqlite => format!("({to} - {from})"),
            Self::Postgres => {
                format!("CAST(EXTRACT(EPOCH FROM {to} - {from}) * 1000000 AS BIGINT)")
            }
        }
    }

    /// `LIKE` that ignores case (SQLite's does, for ASCII).
    pub const fn like_any_case(self) -> &'static str {
        match self {
            Self::Sqlite => "LIKE",
            Self::Postgres => "ILIKE",
        }
    }

    /// Before a column in a condition: "do not use an index on this column", where SQLite's
    /// planner would pick a worse one.
    pub const fn not_by_index(self) -> &'static str {
        match self {
            Self::Sqlite => "+",
            Self::Postgres => "",
        }
    }

    /// SQL for a job's subject from its JSON payload `payload` (a column or an alias): the
    /// first of [`app::api::SUBJECT_FIELDS`] present, as text, cut to its length.
    pub fn payload_subject(self, payload: &str) -> String {
        use app::api::{SUBJECT_CHARS, SUBJECT_FIELDS};
        let fields: Vec<String> = SUBJECT_FIELDS
            .iter()
            .map(|field| match self {
                Self::Sqlite => format!("json_extract({payload}, '$.{field}')"),
                Self::Postgres => format!("({payload}) ->> '{field}'"),
            })
            .collect();
        match self {
            Self::Sqlite => format!(
                "substr(CAST(COALESCE({}) AS TEXT), 1, {SUBJECT_CHARS})",
                fields.join(", ")
            ),
            Self::Postgres => format!("left(COALESCE({}), {SUBJECT_CHARS})", fields.join(", ")),
        }
    }

    /// Appends ` AND <job j matches the search>`: its id, its idempotency key, its batch's id,
    /// or `words` (`store::search`; `None` when no job's words can match). Within `Recent`,
    /// the word test is of the jobs of the `recent` window only.
    pub fn push_search<'a>(
        self,
        query: &mut Query<'a>,
        text: &'a str,
        words: Option<&'a WordMatch>,
        scope: SearchScope,
    ) {
        match self {
            Self::Sqlite => {
                // One set of rowids from four indexes; an OR of them would scan every job.
                // Within the window, its rowids are tested before any job is read.
                query.push(match scope {
                    SearchScope::Everywhere => " AND j.rowid IN (",
                    SearchScope::Recent => " AND recent.r IN (",
                });
                push_sqlite_named_by(query, text);
                if let Some(words) = words {
                    query
                        .push(" UNION ALL SELECT rowid FROM jobs_search WHERE jobs_search MATCH ")
                        .bind(words.fts_query());
                    if scope == SearchScope::Recent {
                        // The window's rowids and a little more: the index reads only those.
                        query.push(" AND rowid >= (SELECT min(r) FROM recent)");
                    }
                }
                query.push(")");
            }
            Self::Postgres => {
                query
                    .push(" AND (j.id = ")
                    .bind(text)
                    .push(" OR j.idempotency_key = ")
                    .bind(text)
                    .push(" OR j.local_batch_id = ")
                    .append(local_batch_named(text));
                match (words, scope) {
                    // Within the window (`j` is then `recent`, its type filtered already), the
                    // stored words of each of its jobs, never the GIN index, which would find
                    // every match first.
                    (Some(words), SearchScope::Recent) => {
                        query
                            .push(" OR j.payload_words @@ CAST(")
                            .bind(words.words.as_str())
                            .push(" AS tsquery)");
                    }
                    // Everywhere, the GIN index of the words and the type (migration 18),
                    // asked for both at once when the list asks for a type.
                    (Some(words), SearchScope::Everywhere) => {
                        query
                            .push(" OR (j.payload_words @@ CAST(")
                            .bind(words.words.as_str())
                            .push(" AS tsquery)");
                        if let Some(job_type) = words.job_type {
                            query.push(" AND j.job_type = ").bind(job_type.as_str());
                        }
                        query.push(")");
                    }
                    (None, _) => {}
                }
                query.push(")");
            }
        }
    }

    /// The `recent` window of a search (`store::search`): how it opens (`WITH recent AS (…
    /// FROM jobs j WHERE 1 = 1`, the filters and its `ORDER BY … LIMIT` follow) and where the
    /// page then reads its jobs `j` (with their owners `u`).
    pub const fn recent_window(self) -> (&'static str, &'static str) {
        match self {
            // The window's rowids, kept: the word index is then read from the lowest of them.
            // The window leads (CROSS JOIN), its rowids tested before a job is read: led by the
            // set of matches, as the planner chose for an admin, a common word's page took
            // twice as long (`BENCHMARKS.md`).
            Self::Sqlite => (
                "WITH recent AS MATERIALIZED (SELECT j.rowid AS r FROM jobs j WHERE 1 = 1",
                " FROM recent CROSS JOIN jobs j ON j.rowid = recent.r \
                 JOIN users u ON u.id = j.owner_id",
            ),
            // The window's jobs themselves, read along the index only as far as the page
            // needs: a common word stops after a few hundred rows, not four thousand.
            Self::Postgres => (
                "WITH recent AS (SELECT j.* FROM jobs j WHERE 1 = 1",
                " FROM recent j JOIN users u ON u.id = j.owner_id",
            ),
        }
    }

    /// `SELECT COUNT(*)` of the jobs a search finds, at most `cap`, where `conditions` are the
    /// other filters (` AND …` on `jobs j`).
    ///
    /// `counted` is `words` narrowed to every filter `conditions` asks for (`counted_words`):
    /// the word index then counts them alone.
    pub fn count_search<'a>(
        self,
        text: &'a str,
        words: Option<&'a WordMatch>,
        counted: Option<&'a WordMatch>,
        conditions: Query<'a>,
        cap: i64,
    ) -> Query<'a> {
        let (Self::Sqlite, Some(words)) = (self, words) else {
            let mut count =
                Query::new("SELECT COUNT(*) FROM (SELECT 1 FROM jobs j WHERE 1 = 1", []);
            count.append(conditions);
            self.push_search(&mut count, text, words, SearchScope::Everywhere);
            count.push(" LIMIT ").bind(cap).push(") matching");
            return count;
        };
        // SQLite: the word matches counted from the full-text index in its own order (a set
        // of every match first would cost as much as they are many), plus the jobs found by
        // id, key or batch that are not among them.
        // With no filter but the owner's and the type the index alone counts (no job read).
        let (counted, joined) = match counted {
            Some(counted) => (counted, false),
            None => (words, !conditions.sql.is_empty()),
        };
        let matches = if joined {
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM jobs_search s CROSS JOIN jobs j \
             ON j.rowid = s.rowid WHERE s.jobs_search MATCH ?"
        } else {
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM jobs_search s WHERE s.jobs_search MATCH ?"
        };
        let mut count = Query::new(matches, [counted.fts_query().into()]);
        if joined {
            count.append(conditions.clone());
        }
        count
            .push(" LIMIT ")
            .bind(cap)
            .push(")) + (SELECT COUNT(*) FROM (SELECT 1 FROM jobs j WHERE j.rowid IN (");
        push_sqlite_named_by(&mut count, text);
        count
            .push(") AND j.rowid NOT IN (SELECT rowid FROM jobs_search WHERE jobs_search MATCH ")
            .bind(words.fts_query())
            .push(")");
        count.append(conditions);
        count.push(" LIMIT ").bind(cap).push("))");
        count
    }
}

/// SQLite: the rowids of the jobs whose id, idempotency key or batch's id is `text`, one set
/// from three indexes (an OR of the three would scan every job).
fn push_sqlite_named_by<'a>(query: &mut Query<'a>, text: &'a str) {
    query
        .push("SELECT rowid FROM jobs WHERE id = ")
        .bind(text)
        .push(" UNION ALL SELECT rowid FROM jobs WHERE idempotency_key = ")
        .bind(text)
        .push(" UNION ALL SELECT rowid FROM jobs WHERE local_batch_id = ")
        .append(local_batch_named(text));
}

/// Where a search tests payload words: every job, or the `recent` window's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchScope {
    Everywhere,
    Recent,
}

/// A search's words as the store's word index matches them (`store::search`): every word,
/// each as the start of one; with a type filter, among that type's jobs, which both word
/// indexes hold beside each job's words (migration 18) and so intersect with the word's: no
/// match of another type is read to check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WordMatch {
    words: String,
    job_type: Option<JobType>,
}

impl WordMatch {
    fn new(words: String) -> Self {
        Self {
            words,
            job_type: None,
        }
    }

    /// The same words among the jobs of one type.
    pub fn typed(&self, job_type: JobType) -> Self {
        Self {
            job_type: Some(job_type),
            ..self.clone()
        }
    }

    /// SQLite: the FTS5 query, the type's name as its index holds it (hex: one token, in a
    /// column no search word reads).
    fn fts_query(&self) -> String {
        match self.job_type {
            Some(job_type) => format!(
                "{} AND job_type : \"{}\"",
                self.words,
                hex::encode(job_type.as_str())
            ),
            None => self.words.clone(),
        }
    }

    /// SQLite: an FTS5 query of each word as a prefix ("nvd"*), all of them (FTS5's implicit
    /// AND), in the payload's column only (the index's other columns are the owner's and the
    /// type's).
    pub fn prefixes(words: &[String]) -> Self {
        let prefixes: Vec<String> = words.iter().map(|w| format!("\"{w}\"*")).collect();
        Self::new(format!("payload : ({})", prefixes.join(" ")))
    }

    /// PostgreSQL: a `tsquery` of each word as the words it begins (`'nvda' | 'nvdas'`), or as a
    /// prefix (`'n':*`), all of them, against the stored words (migration 000006, indexed with
    /// the job's type by `jobs_words_type`, migration 18).
    pub fn tsquery(words: &[WordsBegun]) -> Self {
        let terms: Vec<String> = words
            .iter()
            .map(|word| match word {
                WordsBegun::Words(words) => {
                    let exact: Vec<String> = words.iter().map(|w| tsquery_lexeme(w)).collect();
                    format!("({})", exact.join(" | "))
                }
                WordsBegun::Prefix(prefix) => format!("{}:*", tsquery_lexeme(prefix)),
            })
            .collect();
        Self::new(terms.join(" & "))
    }
}

/// A word as a quoted `tsquery` lexeme, taken literally: its quotes and backslashes escaped.
fn tsquery_lexeme(word: &str) -> String {
    format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tsquery_lists_the_words_begun_or_a_prefix() {
        let words = [
            WordsBegun::Words(vec!["nvda".into(), "nvdas".into()]),
            WordsBegun::Prefix("r".into()),
            WordsBegun::Words(vec!["o'neil\\".into()]),
        ];
        assert_eq!(
            WordMatch::tsquery(&words).words,
            "('nvda' | 'nvdas') & 'r':* & ('o''neil\\\\')"
        );
        let prefixes = WordMatch::prefixes(&["nvd".into(), "q3".into()]);
        assert_eq!(prefixes.fts_query(), "payload : (\"nvd\"* \"q3\"*)");
        assert_eq!(
            Dialect::Sqlite
                .owned_words(&prefixes, "u-1")
                .unwrap()
                .fts_query(),
            "payload : (\"nvd\"* \"q3\"*) AND owner : \"752d31\""
        );
        assert_eq!(Dialect::Postgres.owned_words(&prefixes, "u-1"), None);
        let typed = prefixes.typed(JobType::RiskReport);
        let risk = "job_type : \"7269736b5f7265706f7274\"";
        assert_eq!(
            typed.fts_query(),
            format!("payload : (\"nvd\"* \"q3\"*) AND {risk}")
        );
        assert_eq!(
            Dialect::Sqlite
                .owned_words(&typed, "u-1")
                .unwrap()
                .fts_query(),
            format!("payload : (\"nvd\"* \"q3\"*) AND {risk} AND owner : \"752d31\"")
        );
    }
}
