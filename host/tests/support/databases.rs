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

/// A PostgreSQL server of the test's own (initdb in a temporary folder, on
/// a free loopback port), so that a test can stop and restart it without
/// touching the one the other suites share. As root, it runs as `postgres`.
pub struct OwnPostgres {
    pub url: String,
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    /// `None` (after `skip`) when PostgreSQL's server binaries are missing.
    pub fn start() -> Option<OwnPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .max();
        let Some(bin) = bin else {
            skip("PostgreSQL's server binaries (initdb, pg_ctl) are not under /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = OwnPostgres { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), bin, dir, port };
        if running_as_root() {
            let chown = std::process::Command::new("chown").arg("-R").arg("postgres").arg(server.dir.path()).status();
            assert!(chown.is_ok_and(|s| s.success()), "chown the test cluster's folder to postgres");
        }
        let data = server.dir.path().join("data");
        server.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        server.up();
        Some(server)
    }

    /// One of PostgreSQL's binaries, as `postgres` when root.
    fn command(&self, binary: &str) -> std::process::Command {
        let program = self.bin.join(binary);
        if !running_as_root() {
            return std::process::Command::new(program);
        }
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    }

    fn run(&self, binary: &str, args: &[&std::ffi::OsStr]) {
        let output = self.command(binary).args(args).output().unwrap_or_else(|e| panic!("{binary}: {e}"));
        assert!(output.status.success(), "{binary} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    fn pg_ctl(&self, action: &str, extra: &str) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-o".as_ref(),
                extra.as_ref(),
                action.as_ref(),
            ],
        );
    }

    /// Starts (again) on the same port and data.
    pub fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl("start", &options);
    }

    /// A fast shutdown: every session is ended, as a restart does.
    pub fn down(&self) {
        let data = self.dir.path().join("data");
        self.run(
            "pg_ctl",
            &["-D".as_ref(), data.as_os_str(), "-m".as_ref(), "fast".as_ref(), "-w".as_ref(), "stop".as_ref()],
        );
    }
}

/// /proc/self belongs to the process' effective user.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.command("pg_ctl").arg("-D").arg(data).args(["-m", "immediate", "stop"]).output();
    }
}
