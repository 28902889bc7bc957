//! Group commit: submissions that arrive together are stored in one
//! database transaction, so a burst costs a few statements and one commit
//! instead of a few statements and a commit per request. Nothing waits for
//! a group to fill: a writer takes whatever is waiting when it is free.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{NewTransaction, Store, StoreError};

/// Most submissions one database transaction takes.
const MAX_GROUP: usize = 64;

/// Writers: one gathers the next group while another commits.
const WRITERS: usize = 2;

type Reply = oneshot::Sender<Result<NewTransaction, StoreError>>;

#[derive(Debug)]
pub(super) struct GroupCommit {
    waiting: mpsc::UnboundedSender<(NewTransaction, Reply)>,
}

impl GroupCommit {
    /// Starts the writers; they stop when this is dropped.
    pub(super) fn start(store: Arc<dyn Store>) -> Self {
        let (waiting, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..WRITERS {
            let (store, receiver) = (store.clone(), receiver.clone());
            tokio::spawn(async move {
                loop {
                    let mut group = Vec::with_capacity(MAX_GROUP);
                    if receiver.lock().await.recv_many(&mut group, MAX_GROUP).await == 0 {
                        return;
                    }
                    commit(store.as_ref(), group).await;
                }
            });
        }
        GroupCommit { waiting }
    }

    /// Stores `tx` as [`Store::insert`] does, in a group with whatever else
    /// is waiting; gives it back once committed.
    pub(super) async fn insert(&self, tx: NewTransaction) -> Result<NewTransaction, StoreError> {
        let stopped = || StoreError::Unavailable("the store's writers have stopped".into());
        let (reply, answer) = oneshot::channel();
        self.waiting.send((tx, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn commit(store: &dyn Store, group: Vec<(NewTransaction, Reply)>) {
    let (txs, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
    let answers: Vec<Result<NewTransaction, StoreError>> = match store.insert_many(&txs).await {
        Ok(()) => txs.into_iter().map(Ok).collect(),
        Err(error) if txs.len() == 1 => vec![Err(error)],
        // Every request would wait out the same outage one after another.
        Err(StoreError::Unavailable(reason)) => {
            txs.iter().map(|_| Err(StoreError::Unavailable(reason.clone()))).collect()
        }
        // One request spoiled the group (a duplicate, a reused idempotency
        // key) or it lost a race: each on its own, for its own answer.
        Err(_) => {
            let mut answers = Vec::with_capacity(txs.len());
            for tx in txs {
                answers.push(store.insert(&tx).await.map(|()| tx));
            }
            answers
        }
    };
    for (reply, answer) in replies.into_iter().zip(answers) {
        // The request may have gone away; what it stored stays stored.
        let _ = reply.send(answer);
    }
}
