//! Fresh databases on the machine's PostgreSQL and MariaDB, one per test,
//! so the suites run in parallel without seeing each other's rows.
//! Databases left by runs over an hour old are dropped on the way.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AnyConnection, Connection, Executor, Row};
use switchyard::store::sql::{DatabaseOptions, SqlStore};

use super::relay::skip;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Postgres,
    MySql,
}

impl Server {
    /// The server's URL without a database; `SWITCHYARD_TEST_POSTGRES` and
    /// `SWITCHYARD_TEST_MYSQL` point the suites elsewhere.
    pub fn base(self) -> String {
        let (var, default) = match self {
            Server::Postgres => ("SWITCHYARD_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
            Server::MySql => ("SWITCHYARD_TEST_MYSQL", "mysql://root@127.0.0.1:3306"),
        };
        std::env::var(var).unwrap_or_else(|_| default.to_string())
    }

    fn admin_url(self) -> String {
        format!("{}/test", self.base())
    }
}

const PREFIX: &str = "sy_test_";

/// The URL of a new, empty database on `server`; `None` (after `skip`)
/// when the server cannot be reached outside CI.
pub async fn fresh_url(server: Server) -> Option<String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    sqlx::any::install_default_drivers();
    let mut admin = match AnyConnection::connect(&server.admin_url()).await {
        Ok(conn) => conn,
        Err(e) => {
            skip(&format!("{server:?} at {} is unreachable: {e}", server.admin_url()));
            return None;
        }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    drop_stale(&mut admin, server, now).await;
    let name = format!("{PREFIX}{now}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create a test database");
    Some(format!("{}/{name}", server.base()))
}

/// A migrated store on a new database of `server`.
pub async fn fresh_store(server: Server) -> Option<SqlStore> {
    let url = fresh_url(server).await?;
    Some(SqlStore::connect(&url, &DatabaseOptions::default()).await.expect("connect and migrate"))
}

async fn drop_stale(admin: &mut AnyConnection, server: Server, now: u64) {
    let list = match server {
        Server::Postgres => "SELECT datname FROM pg_database WHERE datname LIKE 'sy\\_test\\_%'",
        Server::MySql => "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'sy\\_test\\_%'",
    };
    let Ok(rows) = admin.fetch_all(list).await else { return };
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else { continue };
        let created: Option<u64> = name.strip_prefix(PREFIX).and_then(|rest| rest.split('_').next()?.parse().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > 3600) {
            let drop = match server {
                Server::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                Server::MySql => format!("DROP DATABASE IF EXISTS {name}"),
            };
            let _ = admin.execute(drop.as_str()).await;
        }
    }
}

/// `serve` refuses a database that lacks a migration, naming it; `migrate`
/// applies it once, and then `serve` starts.
pub async fn migrations_are_applied_once_and_checked(url: &str) {
    let check = DatabaseOptions { migrate: false, ..DatabaseOptions::default() };
    let error = SqlStore::connect(url, &check).await.unwrap_err().to_string();
    assert!(error.contains("lacks migration") && error.contains("switchyard migrate"), "{error}");

    let store = SqlStore::connect_only(url, &check).await.unwrap();
    let applied = store.migrate().await.unwrap();
    assert!(!applied.is_empty(), "the first run applies the schema");
    assert!(store.migrate().await.unwrap().is_empty(), "the second run has nothing to do");
    SqlStore::connect(url, &check).await.expect("a migrated database is accepted");
}

pub async fn an_unreachable_server_is_a_clear_error(url: &str) {
    let options = DatabaseOptions { acquire_timeout: std::time::Duration::from_secs(2), ..DatabaseOptions::default() };
    let error = SqlStore::connect(url, &options).await.unwrap_err().to_string();
    assert!(error.contains("cannot reach") && error.contains("127.0.0.1:9"), "{error}");
    assert!(!error.contains("hunter2"), "the password stays out of errors: {error}");
}
