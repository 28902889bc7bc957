//! The store and queue suites on PostgreSQL (127.0.0.1:5432), each case on
//! a database of its own, with the embedded queue on its outbox.

mod support;

use std::sync::Arc;

use support::databases::{Server, fresh_store, fresh_url};
use switchyard::queue::Queue;
use switchyard::queue::embedded::EmbeddedQueue;
use switchyard::store::Store;
use switchyard::store::sql::{DatabaseOptions, SqlStore};

const SERVER: Server = Server::Postgres;

async fn fresh() -> Option<Arc<dyn Store>> {
    Some(Arc::new(fresh_store(SERVER).await?))
}

async fn fresh_pair(_case: &str) -> Option<support::queue_suite::Fixture> {
    let store = fresh_store(SERVER).await?;
    let queue: Arc<dyn Queue> = Arc::new(EmbeddedQueue::new(&store, support::queue_suite::policy()));
    Some(support::queue_suite::Fixture::leased(Arc::new(store), queue))
}

mod store {
    use super::*;
    store_suite!(fresh());
}

mod queue {
    use super::*;
    queue_suite!(leased: fresh_pair);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_share_a_nonce() {
    let Some(url) = fresh_url(SERVER).await else { return };
    let a = SqlStore::connect(&url, &DatabaseOptions::default()).await.unwrap();
    let b = SqlStore::connect(&url, &DatabaseOptions::default()).await.unwrap();
    support::store_suite::replicas_never_share_a_nonce(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test]
async fn migrations_are_applied_once_and_checked_at_start() {
    let Some(url) = fresh_url(SERVER).await else { return };
    support::databases::migrations_are_applied_once_and_checked(&url).await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_without_the_password() {
    support::databases::an_unreachable_server_is_a_clear_error("postgres://sy:hunter2@127.0.0.1:9/sy").await;
}
