//! The store and queue suites on the embedded default: SQLite in a data
//! directory, WAL mode, with the embedded queue on its outbox.

mod support;

use std::sync::Arc;

use switchyard::queue::Queue;
use switchyard::queue::embedded::EmbeddedQueue;
use switchyard::store::Store;
use switchyard::store::sqlite::SqliteStore;

async fn open() -> SqliteStore {
    // Kept after the test: SQLite creates its WAL files beside the database.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    SqliteStore::open(&dir).await.expect("open and migrate")
}

async fn fresh_store() -> Arc<dyn Store> {
    Arc::new(open().await)
}

async fn fresh_pair() -> support::queue_suite::Pair {
    let store = open().await;
    let queue: Arc<dyn Queue> = Arc::new(EmbeddedQueue::new(store.pool().clone(), support::queue_suite::policy()));
    (Arc::new(store), queue)
}

mod store {
    use super::*;
    store_suite!(fresh_store());
}

mod queue {
    use super::*;
    queue_suite!(fresh_pair());
}

#[tokio::test]
async fn reopening_keeps_everything_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    store.insert(&support::store_suite::new_tx("kept")).await.unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert!(store.get("kept").await.unwrap().is_some());
    let queue = EmbeddedQueue::new(store.pool().clone(), Default::default());
    assert_eq!(queue.stats().await.unwrap().queued, 1, "the queued work survived the restart");
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_is_a_clear_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let error = SqliteStore::open(&file.path().join("sub")).await.unwrap_err();
    assert!(error.to_string().contains("cannot create data directory"), "{error}");
}
