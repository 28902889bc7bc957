//! The built-in default of each kind, used when its plugin is missing,
//! traps, times out or answers malformed:
//!
//! - selector: round-robin over the healthy candidates in id order;
//! - policy: deny (a relay never admits what no policy has checked);
//! - fee: the market's "fast" tier (75th percentile priority fee, 1 gwei if
//!   the market reports none) with a max fee of twice the base fee plus the
//!   priority fee, clamped to the cap; a replacement raises both fees by 10%,
//!   or answers "cannot bump" when the cap forbids it.

use alloy_primitives::U256;

use super::answers::{MIN_BUMP_BPS, bumped};
use super::types::{Candidate, FeeDecision, FeeMarket, FeeQuote, Selection, Verdict};

pub(crate) const FAST_PERCENTILE: u8 = 75;
const ONE_GWEI: u64 = 1_000_000_000;

pub(crate) fn select(candidates: &[Candidate], sequence: u64) -> Selection {
    let mut healthy: Vec<&Candidate> = candidates.iter().filter(|c| c.healthy).collect();
    if healthy.is_empty() {
        return Selection::Refused("no healthy relayer".into());
    }
    healthy.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let index = (sequence % healthy.len() as u64) as usize;
    Selection::Chosen(healthy[index].id.clone())
}

pub(crate) fn verdict() -> Verdict {
    Verdict::Deny("the policy plugin is unavailable, so the request is denied".into())
}

pub(crate) fn price(market: &FeeMarket) -> FeeDecision {
    let cap = market.max_fee_cap;
    let mut priority_fee = market.priority_fee_at(FAST_PERCENTILE).unwrap_or(U256::from(ONE_GWEI));
    let mut max_fee = market.base_fee.saturating_mul(U256::from(2)).saturating_add(priority_fee);
    if let Some(previous) = market.previous {
        priority_fee = priority_fee.max(bumped(previous.priority_fee, MIN_BUMP_BPS));
        max_fee = max_fee.max(bumped(previous.max_fee, MIN_BUMP_BPS)).max(priority_fee);
        if max_fee > cap {
            return FeeDecision::CannotBump(format!(
                "a replacement needs a max fee of at least {max_fee} wei but the cap is {cap} wei"
            ));
        }
    }
    let max_fee = max_fee.min(cap);
    FeeDecision::Quote(FeeQuote { max_fee, priority_fee: priority_fee.min(max_fee), gas_limit_factor_bps: 10_000 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::answers::check_fee;
    use crate::plugins::types::AttemptFees;

    fn candidate(id: &str, healthy: bool) -> Candidate {
        Candidate { id: id.into(), healthy, ..Default::default() }
    }

    #[test]
    fn round_robin_skips_unhealthy() {
        let c = [candidate("b", true), candidate("a", true), candidate("x", false)];
        let picks: Vec<Selection> = (0..3).map(|s| select(&c, s)).collect();
        assert_eq!(picks, ["a", "b", "a"].map(|id| Selection::Chosen(id.into())));
        assert!(matches!(select(&[candidate("x", false)], 0), Selection::Refused(_)));
    }

    #[test]
    fn fee_fallback_answers_are_well_formed() {
        let gwei = |n: u64| U256::from(n * ONE_GWEI);
        let market = FeeMarket {
            base_fee: gwei(10),
            priority_fees: vec![(50, gwei(2)), (75, gwei(3))],
            max_fee_cap: gwei(100),
            previous: None,
        };
        let first = price(&market);
        assert_eq!(
            first,
            FeeDecision::Quote(FeeQuote { max_fee: gwei(23), priority_fee: gwei(3), gas_limit_factor_bps: 10_000 })
        );
        assert!(check_fee(&first, &market).is_ok());

        let replacing =
            FeeMarket { previous: Some(AttemptFees { max_fee: gwei(50), priority_fee: gwei(5) }), ..market.clone() };
        let bumped = price(&replacing);
        assert!(check_fee(&bumped, &replacing).is_ok(), "{bumped:?}");

        let stuck = FeeMarket { previous: Some(AttemptFees { max_fee: gwei(95), priority_fee: gwei(5) }), ..market };
        assert!(matches!(price(&stuck), FeeDecision::CannotBump(_)));
    }
}
