//! Weighted rotation over healthy relayers: over any run of `total weight`
//! consecutive decisions, each relayer is chosen exactly `weight` times.
//!
//! Weights come from the plugin's config, `weights = "relayer-a=3, relayer-b=1"`;
//! a relayer not named there keeps the weight the host reports for it. A
//! weight of 0 takes a relayer out of rotation.

use switchyard_sdk::selector::{Candidate, Selection, Selector};
use switchyard_sdk::{Config, Request};

pub struct Weighted;

fn configured_weights(config: &Config) -> Result<Vec<(String, u32)>, String> {
    Ok(config.pairs::<u32>("weights")?)
}

impl Selector for Weighted {
    fn check_config(config: &Config) -> Result<(), String> {
        configured_weights(config).map(drop)
    }

    fn select(config: &Config, _: &Request, candidates: &[Candidate], sequence: u64) -> Selection {
        let overrides = match configured_weights(config) {
            Ok(w) => w,
            Err(e) => return Selection::refused(e),
        };
        let weight_of = |c: &Candidate| overrides.iter().find(|(id, _)| *id == c.id).map_or(c.weight, |(_, w)| *w);
        let mut weighted: Vec<(&Candidate, u64)> = candidates
            .iter()
            .filter(|c| c.healthy)
            .map(|c| (c, u64::from(weight_of(c))))
            .filter(|(_, w)| *w > 0)
            .collect();
        weighted.sort_unstable_by(|a, b| a.0.id.cmp(&b.0.id));
        let total: u64 = weighted.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Selection::refused("no healthy relayer with a weight above zero");
        }
        let mut slot = sequence % total;
        for (candidate, weight) in weighted {
            if slot < weight {
                return Selection::chosen(candidate);
            }
            slot -= weight;
        }
        unreachable!("slot < total weight")
    }
}

switchyard_sdk::export_selector!(Weighted);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{candidate, check_selector_config, config, request, select};

    fn count_choices(cfg: &Config, candidates: &[Candidate], decisions: u64) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = candidates.iter().map(|c| (c.id.clone(), 0)).collect();
        for seq in 0..decisions {
            let Selection::Chosen(id) = select::<Weighted>(cfg, &request(), candidates, seq) else {
                panic!("refused at {seq}");
            };
            counts.iter_mut().find(|(c, _)| *c == id).unwrap().1 += 1;
        }
        counts
    }

    #[test]
    fn configured_weights_set_the_shares() {
        let cfg = config(&[("weights", "a=3, b=1")]);
        let counts = count_choices(&cfg, &[candidate("a"), candidate("b")], 400);
        assert_eq!(counts, vec![("a".into(), 300), ("b".into(), 100)]);
    }

    #[test]
    fn host_weights_apply_when_not_configured() {
        let candidates = [Candidate { weight: 2, ..candidate("a") }, candidate("b")];
        let counts = count_choices(&config(&[]), &candidates, 30);
        assert_eq!(counts, vec![("a".into(), 20), ("b".into(), 10)]);
    }

    #[test]
    fn zero_weight_and_unhealthy_are_never_chosen() {
        let cfg = config(&[("weights", "a=0")]);
        let candidates = [candidate("a"), Candidate { healthy: false, ..candidate("b") }, candidate("c")];
        let counts = count_choices(&cfg, &candidates, 10);
        assert_eq!(counts, vec![("a".into(), 0), ("b".into(), 0), ("c".into(), 10)]);
    }

    #[test]
    fn refuses_when_every_weight_is_zero() {
        let cfg = config(&[("weights", "a=0")]);
        assert!(matches!(select::<Weighted>(&cfg, &request(), &[candidate("a")], 0), Selection::Refused(_)));
    }

    #[test]
    fn bad_weights_are_a_config_error() {
        let err = check_selector_config::<Weighted>(&config(&[("weights", "a=heavy")])).unwrap_err();
        assert!(err.contains("`weights`") && err.contains("a=heavy"), "{err}");
        assert!(check_selector_config::<Weighted>(&config(&[("weights", "a=2")])).is_ok());
    }
}
