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

    mod properties {
        //! Any answer a plugin can lift, checked against any request: the
        //! check never panics, everything it accepts is safe to act on, and
        //! what it says about a refused answer stays short.
        use proptest::prelude::*;

        use super::*;
        use crate::plugins::types::{AttemptFees, Changes, FeeQuote, Speed};

        fn u256() -> impl Strategy<Value = U256> {
            prop_oneof![
                any::<[u64; 4]>().prop_map(U256::from_limbs),
                any::<u64>().prop_map(U256::from),
                Just(U256::ZERO),
                Just(U256::MAX),
            ]
        }

        /// Fees of an earlier attempt, below 2^128 so that 110% of them is exact here.
        fn previous() -> impl Strategy<Value = Option<AttemptFees>> {
            prop::option::of(
                (any::<u128>(), any::<u128>())
                    .prop_map(|(m, p)| AttemptFees { max_fee: U256::from(m), priority_fee: U256::from(p) }),
            )
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof!["\\PC{0,40}", "\\s{0,5}", "x{1000,1100}", "\\PC{2000,2100}"]
        }

        proptest! {
            #[test]
            fn an_accepted_fee_quote_is_within_the_cap_and_bumps_enough(
                max_fee in u256(), priority_fee in u256(), factor in any::<u32>(),
                cap in any::<[u64; 3]>(), previous in previous(), reason in text(), bump in any::<bool>(),
            ) {
                let cap = U256::from_limbs([cap[0], cap[1], cap[2], 0]);
                let market = FeeMarket { max_fee_cap: cap, previous, ..Default::default() };
                let decision = if bump {
                    FeeDecision::CannotBump(reason.clone())
                } else {
                    FeeDecision::Quote(FeeQuote { max_fee, priority_fee, gas_limit_factor_bps: factor })
                };
                match (check_fee(&decision, &market), decision) {
                    (Ok(()), FeeDecision::Quote(q)) => {
                        prop_assert!(!q.max_fee.is_zero() && q.max_fee <= cap && q.priority_fee <= q.max_fee);
                        prop_assert!(GAS_LIMIT_FACTOR_BPS.contains(&q.gas_limit_factor_bps));
                        if let Some(p) = previous {
                            let ten_thousand = U256::from(10_000);
                            prop_assert!(q.max_fee * ten_thousand >= p.max_fee * U256::from(11_000));
                            prop_assert!(q.priority_fee * ten_thousand >= p.priority_fee * U256::from(11_000));
                        }
                    }
                    (Ok(()), FeeDecision::CannotBump(r)) => {
                        prop_assert!(!r.trim().is_empty() && r.len() <= MAX_REASON_BYTES);
                    }
                    (Err(error), _) => prop_assert!(error.len() < 512, "{} bytes", error.len()),
                }
            }

            #[test]
            fn an_accepted_selection_names_a_candidate(
                ids in prop::collection::vec("[a-z0-9-]{1,8}", 0..16), chosen in text(), pick in any::<prop::sample::Index>(),
                refuse in any::<bool>(), from_candidates in any::<bool>(),
            ) {
                let candidates: Vec<Candidate> =
                    ids.iter().map(|id| Candidate { id: id.clone(), ..Default::default() }).collect();
                let chosen = match (from_candidates, ids.is_empty()) {
                    (true, false) => ids[pick.index(ids.len())].clone(),
                    _ => chosen,
                };
                let selection = if refuse { Selection::Refused(chosen.clone()) } else { Selection::Chosen(chosen.clone()) };
                match (check_selection(&selection, &candidates), refuse) {
                    (Ok(()), false) => prop_assert!(ids.contains(&chosen)),
                    (Ok(()), true) => prop_assert!(!chosen.trim().is_empty() && chosen.len() <= MAX_REASON_BYTES),
                    (Err(error), refused) => {
                        prop_assert!(refused || !ids.contains(&chosen));
                        prop_assert!(error.len() < 512, "{} bytes", error.len());
                    }
                }
            }

            #[test]
            fn an_accepted_verdict_never_raises_the_gas_limit(
                asked in prop::option::of(any::<u64>()), changed in prop::option::of(any::<u64>()),
                reason in text(), deny in any::<bool>(),
            ) {
                let request = TxRequest { gas_limit: asked, ..Default::default() };
                let verdict = if deny {
                    Verdict::Deny(reason.clone())
                } else {
                    Verdict::AllowWithChanges(Changes { gas_limit: changed, speed: Some(Speed::Fast) })
                };
                match (check_verdict(&verdict, &request), deny) {
                    (Ok(()), false) => {
                        prop_assert!(changed != Some(0));
                        if let (Some(new), Some(asked)) = (changed, asked) {
                            prop_assert!(new <= asked);
                        }
                    }
                    (Ok(()), true) => prop_assert!(!reason.trim().is_empty() && reason.len() <= MAX_REASON_BYTES),
                    (Err(error), _) => prop_assert!(error.len() < 512, "{} bytes", error.len()),
                }
            }
        }
    }
}
