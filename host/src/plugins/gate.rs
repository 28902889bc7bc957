//! Plugin calls are CPU-bound. Running more at once than there are cores
//! only stretches each one towards its deadline and starves the thread that
//! compiles a hot swap. So calls pass a gate with one permit per core; the
//! others wait as parked tasks, holding no thread.

use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Debug)]
pub(crate) struct CallGate(Semaphore);

impl CallGate {
    pub(crate) fn new(permits: usize) -> Self {
        CallGate(Semaphore::new(permits.max(1)))
    }

    pub(crate) async fn enter(&self) -> SemaphorePermit<'_> {
        self.0.acquire().await.expect("the call gate is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_than_the_permits_at_once() {
        let gate = std::sync::Arc::new(CallGate::new(2));
        let counts = std::sync::Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (gate, counts) = (gate.clone(), counts.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let _permit = gate.enter().await;
                        let now = counts.0.fetch_add(1, Ordering::SeqCst) + 1;
                        counts.1.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        counts.0.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(counts.1.load(Ordering::SeqCst), 2);
    }
}
