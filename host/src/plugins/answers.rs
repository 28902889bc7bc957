//! What makes a plugin's answer well formed. An answer that fails here is a
//! `PluginError::MalformedAnswer` and the pipeline falls back.

use alloy_primitives::U256;

use super::truncate;
use super::types::{Candidate, FeeDecision, FeeMarket, Selection, TxRequest, Verdict};

/// Reasons end up in API responses and logs.
pub(crate) const MAX_REASON_BYTES: usize = 1024;
/// Nodes refuse a replacement that raises either fee by less than 10%.
pub(crate) const MIN_BUMP_BPS: u32 = 1000;
pub(crate) const GAS_LIMIT_FACTOR_BPS: std::ops::RangeInclusive<u32> = 10_000..=30_000;

fn check_reason(what: &str, reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err(format!("{what} with an empty reason"));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!("{what} reason of {} bytes (at most {MAX_REASON_BYTES})", reason.len()));
    }
    Ok(())
}

pub(crate) fn check_selection(selection: &Selection, candidates: &[Candidate]) -> Result<(), String> {
    match selection {
        Selection::Chosen(id) if candidates.iter().any(|c| &c.id == id) => Ok(()),
        Selection::Chosen(id) => Err(format!("chose relayer `{}`, which is not a candidate", truncate(id, 64))),
        Selection::Refused(reason) => check_reason("refused", reason),
    }
}

pub(crate) fn check_verdict(verdict: &Verdict, request: &TxRequest) -> Result<(), String> {
    match verdict {
        Verdict::Allow => Ok(()),
        Verdict::Deny(reason) => check_reason("denied", reason),
        Verdict::AllowWithChanges(changes) => match (changes.gas_limit, request.gas_limit) {
            (Some(0), _) => Err("changed the gas limit to zero".into()),
            (Some(new), Some(asked)) if new > asked => {
                Err(format!("raised the gas limit from {asked} to {new}; a policy may only lower it"))
            }
            _ => Ok(()),
        },
    }
}

/// `value` raised by `bps` basis points, rounded up.
pub(crate) fn bumped(value: U256, bps: u32) -> U256 {
    value.saturating_mul(U256::from(10_000 + bps)).div_ceil(U256::from(10_000))
}

pub(crate) fn check_fee(decision: &FeeDecision, market: &FeeMarket) -> Result<(), String> {
    let quote = match decision {
        FeeDecision::CannotBump(reason) => return check_reason("cannot-bump", reason),
        FeeDecision::Quote(q) => q,
    };
    if quote.max_fee.is_zero() {
        return Err("quoted a max fee of zero".into());
    }
    if quote.priority_fee > quote.max_fee {
        return Err(format!("priority fee {} is above max fee {}", quote.priority_fee, quote.max_fee));
    }
    if quote.max_fee > market.max_fee_cap {
        return Err(format!("max fee {} is above the cap {}", quote.max_fee, market.max_fee_cap));
    }
    if !GAS_LIMIT_FACTOR_BPS.contains(&quote.gas_limit_factor_bps) {
        return Err(format!("gas limit factor {} bps is outside {GAS_LIMIT_FACTOR_BPS:?}", quote.gas_limit_factor_bps));
    }
    if let Some(previous) = market.previous {
        let (min_max, min_priority) =
            (bumped(previous.max_fee, MIN_BUMP_BPS), bumped(previous.priority_fee, MIN_BUMP_BPS));
        if quote.max_fee < min_max || quote.priority_fee < min_priority {
            return Err(format!(
                "replacement fees ({}, {}) are not 10% above the previous attempt's ({}, {})",
                quote.max_fee, quote.priority_fee, previous.max_fee, previous.priority_fee
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::types::{AttemptFees, Changes, FeeQuote};

    fn quote(max: u64, priority: u64) -> FeeDecision {
        FeeDecision::Quote(FeeQuote {
            max_fee: U256::from(max),
            priority_fee: U256::from(priority),
            gas_limit_factor_bps: 10_000,
        })
    }

    fn market(previous: Option<(u64, u64)>) -> FeeMarket {
        FeeMarket {
            max_fee_cap: U256::from(1000),
            previous: previous.map(|(m, p)| AttemptFees { max_fee: U256::from(m), priority_fee: U256::from(p) }),
            ..Default::default()
        }
    }

    #[test]
    fn fee_quotes_must_respect_cap_order_and_bump() {
        assert!(check_fee(&quote(100, 10), &market(None)).is_ok());
        assert!(check_fee(&quote(1001, 10), &market(None)).unwrap_err().contains("above the cap"));
        assert!(check_fee(&quote(10, 11), &market(None)).unwrap_err().contains("above max fee"));
        assert!(check_fee(&quote(110, 11), &market(Some((100, 10)))).is_ok());
        assert!(check_fee(&quote(109, 11), &market(Some((100, 10)))).unwrap_err().contains("not 10% above"));
        assert!(check_fee(&quote(110, 10), &market(Some((100, 10)))).unwrap_err().contains("not 10% above"));
        assert!(check_fee(&FeeDecision::CannotBump(" ".into()), &market(None)).is_err());
    }

    #[test]
    fn a_selection_must_name_a_candidate() {
        let candidates = [Candidate { id: "a".into(), ..Default::default() }];
        assert!(check_selection(&Selection::Chosen("a".into()), &candidates).is_ok());
        assert!(check_selection(&Selection::Chosen("b".into()), &candidates).unwrap_err().contains("not a candidate"));
        assert!(check_selection(&Selection::Refused("x".repeat(2000)), &candidates).is_err());
    }

    #[test]
    fn a_policy_may_lower_but_not_raise_the_gas_limit() {
        let request = TxRequest { gas_limit: Some(100), ..Default::default() };
        let change = |gas| Verdict::AllowWithChanges(Changes { gas_limit: Some(gas), speed: None });
        assert!(check_verdict(&change(50), &request).is_ok());
        assert!(check_verdict(&change(101), &request).unwrap_err().contains("may only lower"));
        assert!(check_verdict(&change(0), &request).is_err());
    }
}
