//! Throwaway PostgreSQL databases, for the tests that run on PostgreSQL (built only for tests:
//! the `testing` feature): each gets a database of its own with a unique name, copied from a
//! template this process migrated once, and dropped when its guard goes. Never a shared one.

use std::sync::{Arc, Mutex};

use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

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

    /// On the server `admin` names (a URL to its `postgres` database): a copy of this
    /// process's migrated template there, so no test migrates from scratch.
    pub async fn create_on(admin: &str) -> TempPostgres {
        let admin = admin.to_string();
        let template = template_on(&admin).await;
        let name = unique_name("aib_test");
        execute(
            &admin,
            &format!("CREATE DATABASE {name} TEMPLATE {template}"),
        )
        .await;
        TempPostgres {
            url: database_url(&admin, &name),
            name,
            admin,
        }
    }
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// `admin`'s server, database `name`.
fn database_url(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    format!("{base}/{name}")
}

async fn execute(admin: &str, sql: &str) {
    let mut conn = PgConnection::connect(admin)
        .await
        .expect("PostgreSQL runs (set AI_BATCH_TEST_POSTGRES_URL if not on 127.0.0.1:5432)");
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// Templates made by this process, by server: each made once, on first use, and dropped when
/// the process exits (never one an earlier run left).
static TEMPLATES: Mutex<Vec<(String, Arc<OnceCell<String>>)>> = Mutex::new(Vec::new());

/// The name of this process's migrated template on `admin`'s server.
async fn template_on(admin: &str) -> String {
    let cell = {
        let mut templates = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
        if templates.is_empty() {
            // The one unsafe call of the code base, in test support only: registers a plain
            // `extern "C"` function that takes no arguments to run at exit.
            #[allow(unsafe_code)]
            // SAFETY: `drop_templates` is a valid function for the life of the process.
            unsafe {
                libc::atexit(drop_templates)
            };
        }
        match templates.iter().find(|(server, _)| server == admin) {
            Some((_, cell)) => cell.clone(),
            None => {
                let cell = Arc::new(OnceCell::new());
                templates.push((admin.to_string(), cell.clone()));
                cell
            }
        }
    };
    cell.get_or_init(|| async {
        let name = unique_name("aib_template");
        execute(admin, &format!("CREATE DATABASE {name}")).await;
        let mut conn = PgConnection::connect(&database_url(admin, &name))
            .await
            .expect("the template");
        sqlx::migrate!("../migrations/postgres")
            .run(&mut conn)
            .await
            .expect("migrations on the template");
        // A template may have no connections while it is copied.
        let _ = conn.close().await;
        name
    })
    .await
    .clone()
}

/// At exit: drops the templates this process made.
extern "C" fn drop_templates() {
    let templates: Vec<(String, String)> = TEMPLATES
        .lock()
        .map(|t| {
            t.iter()
                .filter_map(|(server, cell)| Some((server.clone(), cell.get()?.clone())))
                .collect()
        })
        .unwrap_or_default();
    drop_databases(templates);
}

/// Drops databases (server, name), on a thread and runtime of its own: this may run inside
/// a runtime that is shutting down, or after every runtime is gone.
fn drop_databases(databases: Vec<(String, String)>) {
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            for (admin, name) in databases {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            }
        });
    })
    .join();
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        drop_databases(vec![(self.admin.clone(), self.name.clone())]);
    }
}
