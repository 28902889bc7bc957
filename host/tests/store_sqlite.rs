//! The store and queue suites on the embedded default: SQLite in a data
//! directory, WAL mode, with the embedded queue on its outbox.

mod support;

use std::sync::Arc;

use switchyard::queue::Queue;
use switchyard::queue::embedded::EmbeddedQueue;
use switchyard::store::Store;
use switchyard::store::sql::SqlStore;

async fn open() -> SqlStore {
    // Kept after the test: SQLite creates its WAL files beside the database.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    SqlStore::open(&dir).await.expect("open and migrate")
}

async fn fresh_store() -> Option<Arc<dyn Store>> {
    Some(Arc::new(open().await))
}

async fn fresh_pair(_case: &str) -> Option<support::queue_suite::Fixture> {
    let store = open().await;
    let queue: Arc<dyn Queue> = Arc::new(EmbeddedQueue::new(&store, support::queue_suite::policy()));
    Some(support::queue_suite::Fixture::leased(Arc::new(store), queue))
}

mod store {
    use super::*;
    store_suite!(fresh_store());
}

mod queue {
    use super::*;
    queue_suite!(leased: fresh_pair);
}

#[tokio::test]
async fn reopening_keeps_everything_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(dir.path()).await.unwrap();
    store.insert(&support::store_suite::new_tx("kept")).await.unwrap();
    drop(store);
    let store = SqlStore::open(dir.path()).await.unwrap();
    assert!(store.get("kept").await.unwrap().is_some());
    let queue = EmbeddedQueue::new(&store, Default::default());
    assert_eq!(queue.stats().await.unwrap().queued, 1, "the queued work survived the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_share_a_nonce() {
    let dir = tempfile::tempdir().unwrap().keep();
    let (a, b) = (SqlStore::open(&dir).await.unwrap(), SqlStore::open(&dir).await.unwrap());
    support::store_suite::replicas_never_share_a_nonce(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn migrations_from_earlier_releases_keep_the_decision_trail() {
    // A database as the previous release left it: its two migrations
    // applied, decisions in a JSON column.
    let earlier = tempfile::tempdir().unwrap();
    let folder = support::repo_root().join("migrations/sqlite");
    for name in ["20261123000001_relay.sql", "20261123000002_attempt_content.sql"] {
        std::fs::copy(folder.join(name), earlier.path().join(name)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::embedded_url(dir.path()).unwrap();
    let store = SqlStore::connect_only(&url, &Default::default()).await.unwrap();
    sqlx::migrate::Migrator::new(earlier.path()).await.unwrap().run(store.pool()).await.unwrap();
    sqlx::query(
        r#"INSERT INTO transactions (id, chain_id, status, value, data, speed, api_key_id, hints, decisions,
               created_at, updated_at)
           VALUES ('old', 31337, 'pending', '0', x'', 'fast', 'k', '[]', '[
               {"kind":"policy","plugin":null,"version_hash":null,"outcome":"allow","fallback_reason":null,"at":1},
               {"kind":"selector","plugin":"rr","version_hash":null,"outcome":"chosen r1","fallback_reason":null,"at":2}
           ]', 1, 1)"#,
    )
    .execute(store.pool())
    .await
    .unwrap();

    let since = std::fs::read_dir(&folder).unwrap().count() - 2;
    assert_eq!(store.migrate().await.unwrap().len(), since, "this release applies every migration since");
    let kept = store.get("old").await.unwrap().unwrap();
    assert_eq!(kept.mined_in, None);
    let outcomes: Vec<&str> = kept.decisions.iter().map(|d| d.outcome.as_str()).collect();
    assert_eq!(outcomes, ["allow", "chosen r1"], "the trail survived, in order");
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_is_a_clear_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let error = SqlStore::open(&file.path().join("sub")).await.unwrap_err();
    assert!(error.to_string().contains("cannot create data directory"), "{error}");
}

#[tokio::test]
async fn reads_are_answered_while_a_write_holds_the_writer() {
    let store = open().await;
    store.insert(&support::store_suite::new_tx("read")).await.unwrap();
    // The one writer connection, mid-transaction with a change not committed.
    let mut writing = store.pool().begin().await.unwrap();
    sqlx::query("UPDATE transactions SET status = 'failed' WHERE id = 'read'").execute(&mut *writing).await.unwrap();
    let seen = store.get("read").await.expect("a read does not wait for the writer");
    assert_eq!(seen.unwrap().status, switchyard::store::TxStatus::Pending, "only committed state is read");
    assert!(store.census().await.is_ok());
    writing.rollback().await.unwrap();
}
