//! The database a test runs on: a temporary SQLite file, or, with
//! `AI_BATCH_TEST_DATABASE=postgres`, a PostgreSQL database of its own (dropped after).
//! `./scripts/test.sh` runs the API tests both ways.

use ai_batch::testing::TempPostgres;

pub struct TestDatabase {
    pub url: String,
    _dir: tempfile::TempDir,
    _postgres: Option<TempPostgres>,
}

pub fn on_postgres() -> bool {
    std::env::var("AI_BATCH_TEST_DATABASE").is_ok_and(|db| db == "postgres")
}

impl TestDatabase {
    /// SQLite, or PostgreSQL when `AI_BATCH_TEST_DATABASE=postgres`.
    pub async fn new() -> TestDatabase {
        Self::create(on_postgres()).await
    }

    /// PostgreSQL, whatever the run's default (tests of several instances).
    pub async fn postgres() -> TestDatabase {
        Self::create(true).await
    }

    /// A database of its own on the server at `admin_url`.
    pub async fn postgres_on(admin_url: &str) -> TestDatabase {
        let postgres = TempPostgres::create_on(admin_url).await;
        TestDatabase {
            url: postgres.url.clone(),
            _dir: tempfile::tempdir().expect("temp dir"),
            _postgres: Some(postgres),
        }
    }

    async fn create(postgres: bool) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres = if postgres {
            Some(TempPostgres::create().await)
        } else {
            None
        };
        let url = match &postgres {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", dir.path().join("test.db").display()),
        };
        TestDatabase {
            url,
            _dir: dir,
            _postgres: postgres,
        }
    }
}
