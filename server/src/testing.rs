//! Throwaway PostgreSQL databases, for the tests and benchmarks that run on PostgreSQL: each
//! gets a database with a unique name, dropped when its guard goes. Never a shared one.

use sqlx::{Connection, PgConnection};

/// The server to make databases on: `AI_BATCH_TEST_POSTGRES_URL`, else the local one.
pub fn postgres_admin_url() -> String {
    std::env::var("AI_BATCH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own, dropped (connections and all) with this guard.
pub struct TempPostgres {
    pub url: String,
    name: String,
    admin: String,
}

impl TempPostgres {
    pub async fn create() -> TempPostgres {
        Self::create_on(&postgres_admin_url()).await
    }

    /// On the server `admin` names (a URL to its `postgres` database).
    pub async fn create_on(admin: &str) -> TempPostgres {
        let admin = admin.to_string();
        let name = format!("aib_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL runs (set AI_BATCH_TEST_POSTGRES_URL if not on 127.0.0.1:5432)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("a test database");
        let _ = conn.close().await;
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        TempPostgres {
            url: format!("{base}/{name}"),
            name,
            admin,
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        // Drop may run inside a runtime that is shutting down: a thread and runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
