//! `switchyard serve` refuses to start on a backend it cannot use, and says
//! which one and why, without the password.

mod support;

use std::process::Command;

use support::databases::{Server, fresh_url};

/// Runs `serve` with `vars` on top of a config that needs no chain to fail
/// early; returns its stderr, after checking it exited with an error.
fn refused(vars: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("serve")
        .env("SWITCHYARD_DATA_DIR", dir.path())
        .env("SWITCHYARD_RPC_URL", "http://127.0.0.1:9")
        .env("SWITCHYARD_LISTEN", "127.0.0.1:0")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "serve started: {stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    stderr
}

#[test]
fn a_wrong_url_names_its_key() {
    let stderr = refused(&[("SWITCHYARD_QUEUE_URL", "kafka://sy:hunter2@127.0.0.1:9092")]);
    assert!(stderr.contains("queue_url"), "{stderr}");
    let stderr = refused(&[("SWITCHYARD_DATABASE_URL", "oracle://sy:hunter2@127.0.0.1/sy")]);
    assert!(stderr.contains("database_url"), "{stderr}");
    let stderr = refused(&[("SWITCHYARD_REDIS_URL", "http://:hunter2@127.0.0.1:6379")]);
    assert!(stderr.contains("redis_url"), "{stderr}");
}

#[test]
fn an_unreachable_server_is_named() {
    let stderr = refused(&[("SWITCHYARD_DATABASE_URL", "postgres://sy:hunter2@127.0.0.1:9/sy")]);
    assert!(stderr.contains("cannot reach PostgreSQL at postgres://sy:***@127.0.0.1:9/sy"), "{stderr}");
    let stderr = refused(&[("SWITCHYARD_QUEUE_URL", "amqp://sy:hunter2@127.0.0.1:9/%2f")]);
    assert!(stderr.contains("RabbitMQ") && stderr.contains("127.0.0.1:9"), "{stderr}");
    let stderr = refused(&[
        ("SWITCHYARD_QUEUE_URL", "sqs://work"),
        ("SWITCHYARD_QUEUE__SQS__ENDPOINT_URL", "http://127.0.0.1:9"),
    ]);
    assert!(stderr.contains("SQS is unreachable"), "{stderr}");
    let stderr = refused(&[("SWITCHYARD_REDIS_URL", "redis://:hunter2@127.0.0.1:9")]);
    assert!(stderr.contains("Redis") && stderr.contains("127.0.0.1:9"), "{stderr}");
}

#[tokio::test]
async fn a_database_that_lacks_a_migration_is_refused() {
    let Some(url) = fresh_url(Server::Postgres).await else { return };
    let stderr = refused(&[("SWITCHYARD_DATABASE_URL", url.as_str())]);
    assert!(stderr.contains("switchyard migrate"), "{stderr}");
}
