//! Sends through the healthy relayer with the fewest pending transactions.
//! Ties rotate, so idle relayers share the load instead of one taking it all.

use switchyard_sdk::selector::{Candidate, Selection, Selector, rotate};
use switchyard_sdk::{Config, Request};

pub struct LeastPending;

impl Selector for LeastPending {
    fn select(_: &Config, _: &Request, candidates: &[Candidate], sequence: u64) -> Selection {
        let healthy = || candidates.iter().filter(|c| c.healthy);
        let Some(fewest) = healthy().map(|c| c.pending_count).min() else {
            return Selection::refused("no healthy relayer");
        };
        let tied = healthy().filter(|c| c.pending_count == fewest);
        rotate(tied, sequence).map_or_else(|| Selection::refused("no healthy relayer"), Selection::chosen)
    }
}

switchyard_sdk::export_selector!(LeastPending);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{candidate, config, request, select};

    fn pending(id: &str, n: u32) -> Candidate {
        Candidate { pending_count: n, ..candidate(id) }
    }

    fn chosen(candidates: &[Candidate], sequence: u64) -> Selection {
        select::<LeastPending>(&config(&[]), &request(), candidates, sequence)
    }

    #[test]
    fn picks_the_fewest_pending() {
        let candidates = [pending("a", 4), pending("b", 1), pending("c", 2)];
        for seq in 0..3 {
            assert_eq!(chosen(&candidates, seq), Selection::Chosen("b".into()));
        }
    }

    #[test]
    fn rotates_among_ties() {
        let candidates = [pending("a", 0), pending("b", 3), pending("c", 0)];
        assert_eq!(chosen(&candidates, 0), Selection::Chosen("a".into()));
        assert_eq!(chosen(&candidates, 1), Selection::Chosen("c".into()));
    }

    #[test]
    fn ignores_unhealthy_even_when_idle() {
        let candidates = [Candidate { healthy: false, ..pending("a", 0) }, pending("b", 7)];
        assert_eq!(chosen(&candidates, 0), Selection::Chosen("b".into()));
    }

    #[test]
    fn refuses_without_healthy_relayers() {
        let candidates = [Candidate { healthy: false, ..pending("a", 0) }];
        assert_eq!(chosen(&candidates, 0), Selection::refused("no healthy relayer"));
    }
}
