//! Rotates over the healthy relayers in id order, one step per decision.

use switchyard_sdk::selector::{Candidate, Selection, Selector, rotate};
use switchyard_sdk::{Config, Request};

pub struct RoundRobin;

impl Selector for RoundRobin {
    fn select(_: &Config, _: &Request, candidates: &[Candidate], sequence: u64) -> Selection {
        rotate(candidates.iter().filter(|c| c.healthy), sequence)
            .map_or_else(|| Selection::refused("no healthy relayer"), Selection::chosen)
    }
}

switchyard_sdk::export_selector!(RoundRobin);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{candidate, config, request, select};

    fn chosen(candidates: &[Candidate], sequence: u64) -> Selection {
        select::<RoundRobin>(&config(&[]), &request(), candidates, sequence)
    }

    #[test]
    fn rotates_in_id_order_whatever_the_input_order() {
        let candidates = [candidate("c"), candidate("a"), candidate("b")];
        let picks: Vec<Selection> = (0..4).map(|seq| chosen(&candidates, seq)).collect();
        let ids = ["a", "b", "c", "a"].map(|id| Selection::Chosen(id.into()));
        assert_eq!(picks, ids);
    }

    #[test]
    fn skips_unhealthy_relayers() {
        let candidates = [candidate("a"), Candidate { healthy: false, ..candidate("b") }, candidate("c")];
        assert_eq!(chosen(&candidates, 1), Selection::Chosen("c".into()));
    }

    #[test]
    fn refuses_when_none_is_healthy() {
        let candidates = [Candidate { healthy: false, ..candidate("a") }];
        assert_eq!(chosen(&candidates, 0), Selection::refused("no healthy relayer"));
        assert_eq!(chosen(&[], 0), Selection::refused("no healthy relayer"));
    }
}
