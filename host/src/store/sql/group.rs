//! Group commit for SQLite's one writer: the batches that wait while the
//! writer is busy share its next database transaction.
//!
//! A database transaction costs SQLite's writer thread two hand-overs of
//! its own (BEGIN, COMMIT) besides the batch, and holds the writer while
//! the caller's task is woken between them. One task owns the writes
//! instead: it takes every batch queued by the time it holds the writer,
//! runs each behind its savepoint and commits them together. A batch that
//! does not apply is rolled back to its savepoint alone; only a failed
//! COMMIT fails the group.

use sqlx::AnyPool;
use sqlx::any::AnyRow;
use tokio::sync::{mpsc, oneshot};

use super::batch::{Batch, Ran};
use super::db;
use crate::store::StoreError;

/// Batches one database transaction takes at most: bounds how long the
/// writer is held for others (the embedded queue, the careful paths).
const MAX_GROUP: usize = 64;
/// Batches waiting for the writer before callers wait to hand theirs over.
const INBOX: usize = 1024;

type Answer = Result<Option<Vec<AnyRow>>, StoreError>;
type Job = (Batch, oneshot::Sender<Answer>);

/// The handle the store's clones share; the task ends with the last one.
#[derive(Clone, Debug)]
pub(super) struct GroupWriter {
    inbox: mpsc::Sender<Job>,
}

impl GroupWriter {
    /// Starts the task that writes through `pool`'s one connection.
    pub(super) fn start(pool: AnyPool) -> Self {
        let (inbox, jobs) = mpsc::channel(INBOX);
        tokio::spawn(write_groups(pool, jobs));
        GroupWriter { inbox }
    }

    /// Runs `batch` in the next group: its rows when applied, `None` when
    /// a guard missed.
    pub(super) async fn write(&self, batch: Batch) -> Answer {
        let stopped = || StoreError::Unavailable("the SQLite writer has stopped".into());
        let (answer, answered) = oneshot::channel();
        self.inbox.send((batch, answer)).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn write_groups(pool: AnyPool, mut jobs: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = jobs.recv().await {
        group.push(first);
        let dbtx = pool.begin().await;
        // What came in while the writer was taken joins this group.
        while group.len() < MAX_GROUP
            && let Ok(job) = jobs.try_recv()
        {
            group.push(job);
        }
        let mut dbtx = match dbtx {
            Ok(dbtx) => dbtx,
            Err(e) => {
                let error = db(e);
                for (_, answer) in group.drain(..) {
                    let _ = answer.send(Err(error.clone()));
                }
                continue;
            }
        };
        let mut answers = Vec::with_capacity(group.len());
        let mut broken: Option<StoreError> = None;
        for (batch, answer) in group.drain(..) {
            if let Some(error) = &broken {
                let _ = answer.send(Err(error.clone()));
                continue;
            }
            match batch.run_behind_savepoint(&mut dbtx).await {
                Ran::Applied(rows) => answers.push((answer, Ok(Some(rows)))),
                Ran::Undone(Ok(())) => answers.push((answer, Ok(None))),
                Ran::Undone(Err(e)) => answers.push((answer, Err(e))),
                Ran::Broken(e) => {
                    let _ = answer.send(Err(e.clone()));
                    broken = Some(e);
                }
            }
        }
        let committed = match broken {
            // Nothing of the group may stand: SQLite may have ended the
            // transaction itself, and a rollback answers for the rest.
            Some(error) => dbtx.rollback().await.map_err(db).and(Err(error)),
            None => dbtx.commit().await.map_err(db),
        };
        for (answer, ran) in answers {
            let ran = match (&committed, ran) {
                // Applied only inside a transaction that did not commit.
                (Err(error), Ok(Some(_))) => Err(error.clone()),
                (_, ran) => ran,
            };
            let _ = answer.send(ran);
        }
    }
}
