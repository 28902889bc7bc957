//! Retention: a task deletes idempotency keys and events past their age,
//! on every replica (a DELETE of what another already deleted is a no-op).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{PruneBefore, Pruned, Store, now_ms};

/// Between prunes: each deletes about this long's worth of rows.
const EVERY: Duration = Duration::from_secs(600);

/// How long each kind of row is kept; `None`: forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub idempotency_keys: Option<Duration>,
    pub events: Option<Duration>,
}

impl Retention {
    /// The cutoffs at `now` (ms since the epoch).
    pub fn before(&self, now: i64) -> PruneBefore {
        let cutoff =
            |kept: Option<Duration>| kept.map(|k| now.saturating_sub(i64::try_from(k.as_millis()).unwrap_or(i64::MAX)));
        PruneBefore { idempotency_keys: cutoff(self.idempotency_keys), events: cutoff(self.events) }
    }

    /// Prunes now, then every [`EVERY`], until `shutdown` turns true.
    pub async fn run(self, store: Arc<dyn Store>, mut shutdown: watch::Receiver<bool>) {
        if self == Retention::default() {
            return;
        }
        while !*shutdown.borrow() {
            match store.prune(self.before(now_ms())).await {
                Ok(Pruned { idempotency_keys: 0, events: 0 }) => {}
                Ok(pruned) => {
                    tracing::info!(
                        idempotency_keys = pruned.idempotency_keys,
                        events = pruned.events,
                        "retention: pruned"
                    );
                }
                Err(error) => tracing::warn!(%error, "retention: the prune failed; trying again later"),
            }
            tokio::select! {
                // A dropped sender is a shutdown too; waiting on it again would spin.
                changed = shutdown.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_are_now_minus_what_is_kept_and_none_keeps_all() {
        let retention = Retention { idempotency_keys: Some(Duration::from_secs(3_600)), events: None };
        assert_eq!(retention.before(10_000_000), PruneBefore { idempotency_keys: Some(6_400_000), events: None });
        let forever = Retention { idempotency_keys: Some(Duration::MAX), events: None };
        assert_eq!(forever.before(5).idempotency_keys, Some(5 - i64::MAX), "saturates instead of overflowing");
    }

    #[tokio::test]
    async fn stops_when_the_shutdown_sender_is_gone() {
        let store = crate::store::sql::SqlStore::connect("sqlite::memory:", &Default::default()).await.unwrap();
        let (sender, receiver) = watch::channel(false);
        let retention = Retention { idempotency_keys: Some(Duration::from_secs(3_600)), events: None };
        let task = tokio::spawn(retention.run(Arc::new(store), receiver));
        drop(sender);
        // Guards against a hang only: a task that spins never finishes.
        tokio::time::timeout(Duration::from_secs(60), task).await.expect("the task stopped").unwrap();
    }
}
