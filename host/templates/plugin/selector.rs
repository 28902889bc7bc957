//! {{name}}: a selector plugin. Chooses the healthy relayer with the fewest
//! transactions in flight; ties go to the next in rotation.
//!
//! Config: `max_pending` (optional): relayers with more in flight are skipped.

use switchyard_sdk::selector::{Candidate, Selection, Selector, rotate};
use switchyard_sdk::{Config, Request};

pub struct Plugin;

impl Selector for Plugin {
    fn check_config(config: &Config) -> Result<(), String> {
        config.parse::<u32>("max_pending").map(drop).map_err(|e| e.to_string())
    }

    fn select(config: &Config, _: &Request, candidates: &[Candidate], sequence: u64) -> Selection {
        let max_pending = config.parse_or("max_pending", u32::MAX).unwrap_or(u32::MAX);
        let usable = candidates.iter().filter(|c| c.healthy && c.pending_count <= max_pending);
        let Some(fewest) = usable.clone().map(|c| c.pending_count).min() else {
            return Selection::refused("no healthy relayer with room");
        };
        let tied = usable.filter(|c| c.pending_count == fewest);
        rotate(tied, sequence).map_or_else(|| Selection::refused("no candidate"), Selection::chosen)
    }
}

switchyard_sdk::export_selector!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{candidate, check_selector_config, config, request, select};

    fn with_pending(id: &str, pending_count: u32) -> Candidate {
        Candidate { pending_count, ..candidate(id) }
    }

    #[test]
    fn chooses_the_least_loaded_healthy_relayer() {
        let candidates = [with_pending("a", 3), with_pending("b", 1), Candidate { healthy: false, ..with_pending("c", 0) }];
        assert_eq!(select::<Plugin>(&config(&[]), &request(), &candidates, 0), Selection::Chosen("b".into()));
    }

    #[test]
    fn refuses_when_every_relayer_is_full() {
        let candidates = [with_pending("a", 5)];
        let answer = select::<Plugin>(&config(&[("max_pending", "4")]), &request(), &candidates, 0);
        assert_eq!(answer, Selection::refused("no healthy relayer with room"));
    }

    #[test]
    fn rejects_a_bad_config() {
        assert!(check_selector_config::<Plugin>(&config(&[("max_pending", "lots")])).is_err());
        assert!(check_selector_config::<Plugin>(&config(&[("max_pending", "4")])).is_ok());
    }
}
