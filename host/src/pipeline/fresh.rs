//! A value read at most once per interval. Readers that find it stale while
//! a read is under way wait for that read and share its outcome: the node
//! answers one call, and one that does not answer costs each reader one
//! timeout, not one per reader queued before it.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

type Read<T> = Shared<BoxFuture<'static, Result<T, String>>>;

pub(super) struct Fresh<T> {
    slot: Mutex<Slot<T>>,
}

struct Slot<T> {
    value: Option<(Instant, T)>,
    reading: Option<Read<T>>,
}

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Fresh { slot: Mutex::new(Slot { value: None, reading: None }) }
    }
}

impl<T: fmt::Debug> fmt::Debug for Fresh<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fresh").field("value", &self.slot.lock().unwrap_or_else(PoisonError::into_inner).value).finish()
    }
}

impl<T: Clone + Send + Sync + 'static> Fresh<T> {
    /// The value if read less than `ttl` ago; otherwise the outcome of the
    /// read under way, or of `read` started now. A failure is not kept.
    pub(super) async fn get<F>(&self, ttl: Duration, read: impl FnOnce() -> F) -> Result<T, String>
    where
        F: Future<Output = Result<T, String>> + Send + 'static,
    {
        let reading = {
            let mut slot = self.lock();
            if let Some((at, value)) = &slot.value
                && at.elapsed() < ttl
            {
                return Ok(value.clone());
            }
            slot.reading.get_or_insert_with(|| read().boxed().shared()).clone()
        };
        let outcome = reading.clone().await;
        let mut slot = self.lock();
        // The first reader back files the outcome; the rest find it filed.
        if slot.reading.as_ref().is_some_and(|current| current.ptr_eq(&reading)) {
            slot.reading = None;
            if let Ok(value) = &outcome {
                slot.value = Some((Instant::now(), value.clone()));
            }
        }
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::join_all;
    use tokio::sync::oneshot;

    use super::*;

    /// Eight readers at once, the read held open until all eight wait.
    async fn eight_at_once(
        fresh: &Fresh<u32>,
        reads: &Arc<AtomicUsize>,
        ttl: Duration,
        answer: Result<u32, String>,
    ) -> Vec<Result<u32, String>> {
        let (open, opened) = oneshot::channel::<()>();
        let mut opened = Some(opened);
        let gets = (0..8).map(|_| {
            let read = opened.take().map(|opened| {
                let (reads, answer) = (reads.clone(), answer.clone());
                move || async move {
                    reads.fetch_add(1, Ordering::SeqCst);
                    let _ = opened.await;
                    answer
                }
            });
            fresh.get(ttl, move || read.expect("only the first reader starts a read")())
        });
        let (outcomes, ()) = tokio::join!(join_all(gets), async move {
            tokio::task::yield_now().await;
            let _ = open.send(());
        });
        outcomes
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_read_and_its_failure() {
        let (fresh, reads) = (Fresh::default(), Arc::new(AtomicUsize::new(0)));
        let outcomes = eight_at_once(&fresh, &reads, Duration::MAX, Ok(7)).await;
        assert_eq!((outcomes, reads.load(Ordering::SeqCst)), (vec![Ok(7); 8], 1));

        let cached = fresh.get(Duration::MAX, || async { Ok(8) }).await;
        assert_eq!((cached, reads.load(Ordering::SeqCst)), (Ok(7), 1), "fresh: not read again");

        let outcomes = eight_at_once(&fresh, &reads, Duration::ZERO, Err("down".into())).await;
        assert_eq!((outcomes, reads.load(Ordering::SeqCst)), (vec![Err("down".to_string()); 8], 2));

        let next = fresh.get(Duration::ZERO, || async { Ok(9) }).await;
        assert_eq!(next, Ok(9), "a failure is not kept: the next reader reads");
    }
}
