//! Rotates over the relayers fit to send: healthy, with at most `max_pending`
//! pending transactions (default 16), a success rate of at least
//! `min_success_rate_bps` (default 0) and a balance of at least `min_balance`
//! (an exact amount such as `"2 ether"` or `"500 gwei"`; default 0). When none
//! is fit, it falls back to plain round-robin over the
//! healthy ones, so a burst of load degrades instead of stopping.

use switchyard_sdk::selector::{Candidate, Selection, Selector, rotate};
use switchyard_sdk::{Config, Request, U256};

pub struct HealthAware;

struct Thresholds {
    max_pending: u32,
    min_success_rate_bps: u32,
    min_balance: U256,
}

impl Thresholds {
    fn from_config(config: &Config) -> Result<Self, String> {
        let min_success_rate_bps = config.parse_or("min_success_rate_bps", 0u32)?;
        if min_success_rate_bps > 10_000 {
            return Err(format!("config key `min_success_rate_bps`: {min_success_rate_bps} is above 10000"));
        }
        Ok(Thresholds {
            max_pending: config.parse_or("max_pending", 16u32)?,
            min_success_rate_bps,
            min_balance: config.amount("min_balance")?.unwrap_or_default(),
        })
    }

    fn admits(&self, c: &Candidate) -> bool {
        c.healthy
            && c.pending_count <= self.max_pending
            && c.success_rate_bps >= self.min_success_rate_bps
            && c.balance >= self.min_balance
    }
}

impl Selector for HealthAware {
    fn check_config(config: &Config) -> Result<(), String> {
        Thresholds::from_config(config).map(drop)
    }

    fn select(config: &Config, _: &Request, candidates: &[Candidate], sequence: u64) -> Selection {
        let thresholds = match Thresholds::from_config(config) {
            Ok(t) => t,
            Err(e) => return Selection::refused(e),
        };
        let fit = rotate(candidates.iter().filter(|c| thresholds.admits(c)), sequence);
        fit.or_else(|| rotate(candidates.iter().filter(|c| c.healthy), sequence))
            .map_or_else(|| Selection::refused("no healthy relayer"), Selection::chosen)
    }
}

switchyard_sdk::export_selector!(HealthAware);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{candidate, check_selector_config, config, request, select};

    fn chosen(cfg: &Config, candidates: &[Candidate], sequence: u64) -> Selection {
        select::<HealthAware>(cfg, &request(), candidates, sequence)
    }

    #[test]
    fn skips_relayers_over_a_threshold() {
        let cfg = config(&[("max_pending", "5"), ("min_success_rate_bps", "9000"), ("min_balance", "2 ether")]);
        let candidates = [
            Candidate { pending_count: 6, ..candidate("busy") },
            Candidate { success_rate_bps: 8_000, ..candidate("flaky") },
            Candidate { balance: U256::from(1u64), ..candidate("poor") },
            Candidate { healthy: false, ..candidate("sick") },
            Candidate { balance: U256::from(3u64) * U256::from(10u64).pow(U256::from(18u64)), ..candidate("zfit") },
        ];
        for seq in 0..5 {
            assert_eq!(chosen(&cfg, &candidates, seq), Selection::Chosen("zfit".into()));
        }
    }

    #[test]
    fn falls_back_to_round_robin_over_healthy_when_none_is_fit() {
        let cfg = config(&[("max_pending", "1")]);
        let candidates = [
            Candidate { pending_count: 9, ..candidate("a") },
            Candidate { pending_count: 9, ..candidate("b") },
            Candidate { healthy: false, ..candidate("c") },
        ];
        assert_eq!(chosen(&cfg, &candidates, 0), Selection::Chosen("a".into()));
        assert_eq!(chosen(&cfg, &candidates, 1), Selection::Chosen("b".into()));
        assert_eq!(chosen(&cfg, &candidates, 2), Selection::Chosen("a".into()));
    }

    #[test]
    fn refuses_when_nothing_is_healthy() {
        let candidates = [Candidate { healthy: false, ..candidate("a") }];
        assert_eq!(chosen(&config(&[]), &candidates, 0), Selection::refused("no healthy relayer"));
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = check_selector_config::<HealthAware>(&config(&[("max_pending", "-1")])).unwrap_err();
        assert!(err.contains("`max_pending`"), "{err}");
        let err = check_selector_config::<HealthAware>(&config(&[("min_success_rate_bps", "20000")])).unwrap_err();
        assert!(err.contains("above 10000"), "{err}");
    }
}
