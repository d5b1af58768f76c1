//! What differs between the databases, behind one small trait: how to connect, how a
//! statement's placeholders and binds are written, how a set of rows is bound (SQLite's chunked
//! `VALUES`, PostgreSQL's `unnest` of arrays), and the few fragments where their SQL differs
//! (search, row locks, a day's bucket). Everything else, the store's rules and its SQL, is
//! written once in `store::sql` over this trait, as River writes its queue once over drivers.
//!
//! Statements are written with `?` placeholders; PostgreSQL's engine numbers them. Values are
//! [`Arg`]s, bound the way each database stores them (times as integer microseconds on SQLite
//! and `timestamptz` on PostgreSQL, JSON as text and `jsonb`); rows come back through the
//! column types [`Time`] and [`JsonText`], which read both.

mod dialect;
mod postgres;
mod sqlite;
mod types;

use std::borrow::Cow;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

pub use dialect::{Dialect, SearchScope, WordMatch};
pub use postgres::Postgres;
pub use sqlite::Sqlite;
pub use types::{JsonText, Time};

use super::StoreResult;

/// A value bound to a statement, as both databases store it. Text borrows where it can: a
/// bulk insert binds megabytes of payloads that need not be copied first.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
    /// Compact JSON text (stored as `jsonb` on PostgreSQL).
    Json(Option<Cow<'a, str>>),
}

impl<'a> Arg<'a> {
    pub fn json(text: impl Into<Cow<'a, str>>) -> Self {
        Arg::Json(Some(text.into()))
    }
}

// `'b: 'a`: text that lives longer (a `&'static str`) binds to a statement of any lifetime.
impl<'a, 'b: 'a> From<&'b str> for Arg<'a> {
    fn from(v: &'b str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}
impl<'a, 'b: 'a> From<&'b String> for Arg<'a> {
    fn from(v: &'b String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}
impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}
impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}
impl<'a, 'b: 'a> From<Option<&'b str>> for Arg<'a> {
    fn from(v: Option<&'b str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<DateTime<Utc>> for Arg<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Arg<'_> {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Time(v)
    }
}

/// What a column of a [`Rows`] holds (PostgreSQL binds each column as an array of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    Time,
    Json,
}

/// A set of rows to bind at once, in order: `WITH v (…) AS ({rows})` in a statement.
#[derive(Clone, Debug)]
pub struct Rows<'a> {
    pub columns: Vec<(&'static str, Kind)>,
    pub values: Vec<Vec<Arg<'a>>>,
}

impl<'a> Rows<'a> {
    pub fn new(columns: &[(&'static str, Kind)]) -> Self {
        Rows {
            columns: columns.to_vec(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Arg<'a>>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.values.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(c1, c2, …)`: the column list for `WITH v … AS`.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| *n).collect();
        format!("({})", names.join(", "))
    }
}

/// A statement: SQL with `?` placeholders, its binds in order, and at most one set of rows
/// (where the SQL says `{rows}`).
#[derive(Clone, Debug, Default)]
pub struct Query<'a> {
    pub sql: String,
    pub args: Vec<Arg<'a>>,
    pub rows: Option<Rows<'a>>,
}

/// Where `{rows}` stands in a statement.
pub const ROWS: &str = "{rows}";

impl<'a> Query<'a> {
    /// A statement and its binds, one per `?`.
    pub fn new(sql: impl Into<String>, args: impl IntoIterator<Item = Arg<'a>>) -> Self {
        let query = Query {
            sql: sql.into(),
            args: args.into_iter().collect(),
            rows: None,
        };
        debug_assert_eq!(
            query.sql.matches('?').count(),
            query.args.len(),
            "{}",
            query.sql
        );
        query
    }

    /// Appends SQL without binds.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder and its bind.
    pub fn bind(&mut self, arg: impl Into<Arg<'a>>) -> &mut Self {
        self.sql.push('?');
        self.args.push(arg.into());
        self
    }

    /// Appends `(?, ?, …)`, one placeholder per item.
    pub fn list<A: Into<Arg<'a>>>(&mut self, items: impl IntoIterator<Item = A>) -> &mut Self {
        self.sql.push('(');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(item);
        }
        self.sql.push(')');
        self
    }

    /// Appends another statement's SQL and binds (a fragment without rows).
    pub fn append(&mut self, other: Query<'a>) -> &mut Self {
        debug_assert!(other.rows.is_none());
        self.sql.push_str(&other.sql);
        self.args.extend(other.args);
        self
    }

    /// Appends the place of a set of rows (`{rows}`).
    pub fn rows(&mut self, rows: Rows<'a>) -> &mut Self {
        debug_assert!(self.rows.is_none(), "one set of rows per statement");
        self.sql.push_str(ROWS);
        self.rows = Some(rows);
        self
    }

    /// Whether the statement is over a set of no rows: it reads and changes nothing, and is
    /// not run (SQLite has no empty `VALUES`).
    pub fn has_no_rows(&self) -> bool {
        self.rows.as_ref().is_some_and(Rows::is_empty)
    }

    /// The statements to run for this one, each with at most `per_statement` rows, and the
    /// binds in their order. Without rows, just this one; over no rows, none.
    pub fn chunks(self, per_statement: usize) -> Vec<Query<'a>> {
        match self.rows {
            None => vec![self],
            Some(rows) if rows.is_empty() => Vec::new(),
            Some(rows) if rows.values.len() <= per_statement => vec![Query {
                rows: Some(rows),
                ..self
            }],
            Some(rows) => rows
                .values
                .chunks(per_statement)
                .map(|chunk| Query {
                    sql: self.sql.clone(),
                    args: self.args.clone(),
                    rows: Some(Rows {
                        columns: rows.columns.clone(),
                        values: chunk.to_vec(),
                    }),
                })
                .collect(),
        }
    }
}

/// How an engine writes a statement: its placeholders, its binds, its sets of rows.
pub(super) trait Binder<'a> {
    /// Writes the next placeholder and binds `arg` to it.
    fn bind(&mut self, sql: &mut String, arg: Arg<'a>) -> StoreResult<()>;
    /// Writes a set of rows (a `SELECT` or `VALUES` of them) and binds their values.
    fn rows(&mut self, sql: &mut String, rows: Rows<'a>) -> StoreResult<()>;
}

/// The statement as `binder` writes it: each `?` and `{rows}` in turn.
pub(super) fn render<'a>(query: Query<'a>, binder: &mut impl Binder<'a>) -> StoreResult<String> {
    let mut sql = String::with_capacity(query.sql.len() + 64);
    let mut args = query.args.into_iter();
    let mut rows = query.rows;
    let mut rest = query.sql.as_str();
    while let Some(at) = rest.find(['?', '{']) {
        sql.push_str(&rest[..at]);
        if rest[at..].starts_with('?') {
            let arg = args
                .next()
                .ok_or_else(|| super::StoreError::Corrupt("a placeholder without a bind".into()))?;
            binder.bind(&mut sql, arg)?;
            rest = &rest[at + 1..];
        } else if rest[at..].starts_with(ROWS) {
            let set = rows
                .take()
                .ok_or_else(|| super::StoreError::Corrupt("{rows} without rows".into()))?;
            binder.rows(&mut sql, set)?;
            rest = &rest[at + ROWS.len()..];
        } else {
            sql.push('{');
            rest = &rest[at + 1..];
        }
    }
    sql.push_str(rest);
    Ok(sql)
}

/// A row type both databases decode (a `#[derive(sqlx::FromRow)]` of columns both read).
pub trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// One database: its connections, how it binds, and its dialect's fragments.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// A write transaction.
    type Tx: Send;

    /// Where its SQL differs from the other's.
    const DIALECT: Dialect;

    /// Rows of a read (the readers' pool).
    async fn read<R: Row>(&self, query: Query<'_>) -> StoreResult<Vec<R>>;
    /// Rows of a single-statement write (`… RETURNING`), outside a transaction.
    async fn write<R: Row>(&self, query: Query<'_>) -> StoreResult<Vec<R>>;
    /// A single-statement write; the rows it changed.
    async fn execute(&self, query: Query<'_>) -> StoreResult<u64>;

    async fn begin(&self) -> StoreResult<Self::Tx>;
    async fn commit(tx: Self::Tx) -> StoreResult<()>;
    async fn tx_read<R: Row>(tx: &mut Self::Tx, query: Query<'_>) -> StoreResult<Vec<R>>;
    async fn tx_execute(tx: &mut Self::Tx, query: Query<'_>) -> StoreResult<u64>;

    /// Tells every instance listening on this database `message` (nothing on SQLite).
    async fn announce(&self, message: &str) -> StoreResult<()>;
    /// What instances announce (`None` where one process owns the database).
    async fn announcements(&self) -> StoreResult<Option<BoxStream<'static, String>>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_with_rows_is_cut_into_chunks_with_its_binds() {
        let mut rows = Rows::new(&[("id", Kind::Text), ("n", Kind::Int)]);
        for i in 0..5 {
            rows.push(vec![format!("j{i}").into(), (i as i64).into()]);
        }
        let mut query = Query::new("WITH v ", []);
        query
            .push(&rows.names())
            .push(" AS (")
            .rows(rows)
            .push(") UPDATE t SET x = ")
            .bind(7i64);
        let chunks = query.chunks(2);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.args == [Arg::Int(Some(7))]));
        assert_eq!(chunks[2].rows.as_ref().unwrap().values.len(), 1);
        assert_eq!(
            chunks[0].sql,
            "WITH v (id, n) AS ({rows}) UPDATE t SET x = ?"
        );
    }
}
