//! Column types both databases read into one row type: a time (SQLite keeps integer
//! microseconds, PostgreSQL `timestamptz`) and JSON text (SQLite `TEXT`, PostgreSQL `jsonb`).

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Postgres, Sqlite, Type};

/// A time as the store keeps it (microsecond precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Utc>);

impl Type<Sqlite> for Time {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for Time {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let micros = <i64 as Decode<Sqlite>>::decode(value)?;
        DateTime::from_timestamp_micros(micros)
            .map(Time)
            .ok_or_else(|| format!("time out of range: {micros}").into())
    }
}

impl Type<Postgres> for Time {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for Time {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Time)
    }
}

/// JSON as compact text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonText(pub String);

impl JsonText {
    pub fn parse(self, column: &str) -> super::super::StoreResult<serde_json::Value> {
        serde_json::from_str(&self.0)
            .map_err(|e| super::super::StoreError::Corrupt(format!("{column}: {e}")))
    }
}

impl Type<Sqlite> for JsonText {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for JsonText {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <String as Decode<Sqlite>>::decode(value).map(JsonText)
    }
}

impl Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("jsonb")
    }
    /// `jsonb`, or text (a `NULL` where a list leaves the payload out).
    fn compatible(ty: &PgTypeInfo) -> bool {
        <sqlx::types::JsonValue as Type<Postgres>>::compatible(ty)
            || <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for JsonText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef;
        let is_json = <sqlx::types::JsonValue as Type<Postgres>>::compatible(&value.type_info());
        if is_json {
            // Compact, as SQLite keeps it: jsonb's own text has spaces after `:` and `,`.
            let value = <sqlx::types::Json<serde_json::Value> as Decode<Postgres>>::decode(value)?;
            Ok(JsonText(value.0.to_string()))
        } else {
            <String as Decode<Postgres>>::decode(value).map(JsonText)
        }
    }
}
