//! EIP-1559 pricing by speed tier, under a cap, with replacement bumps.
//!
//! First attempt: the priority fee is the market's fee at the tier's
//! percentile, and the max fee leaves room for the base fee to rise:
//! `base_fee * base_fee_multiplier_bps / 10000 + priority fee`, clamped to the
//! cap. A replacement raises both fees by at least `bump_bps` (default 1250,
//! never below the 1000 that nodes require) over the previous attempt; when
//! the cap forbids that, the answer is "cannot bump" instead of a quote the
//! node would refuse.
//!
//! Config (all optional): `safe_low_percentile` (10), `average_percentile`
//! (50), `fast_percentile` (75), `fastest_percentile` (95),
//! `base_fee_multiplier_bps` (20000), `bump_bps` (1250), `max_fee` (a cap
//! below the host's, e.g. `"200 gwei"`), `min_priority_fee` (`"1 gwei"`, used
//! when the market reports no priority fees), `gas_limit_factor_bps` (12000).

use switchyard_sdk::fee::{Fee, FeeDecision, FeeMarket, FeeQuote, bump};
use switchyard_sdk::{Config, GWEI, Request, Speed, U256};

pub struct Eip1559;

struct Settings {
    percentiles: [u8; 4],
    base_fee_multiplier_bps: u32,
    bump_bps: u32,
    max_fee: Option<U256>,
    min_priority_fee: U256,
    gas_limit_factor_bps: u32,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, String> {
        let percentile = |key: &str, default: u8| -> Result<u8, String> {
            let p = config.parse_or(key, default)?;
            if !(1..=99).contains(&p) {
                return Err(format!("config key `{key}`: {p} is not a percentile in 1..=99"));
            }
            Ok(p)
        };
        let percentiles = [
            percentile("safe_low_percentile", 10)?,
            percentile("average_percentile", 50)?,
            percentile("fast_percentile", 75)?,
            percentile("fastest_percentile", 95)?,
        ];
        let bump_bps = config.parse_or("bump_bps", 1250u32)?;
        if bump_bps < 1000 {
            return Err(format!("config key `bump_bps`: {bump_bps} is below the 10% (1000) that nodes require"));
        }
        let gas_limit_factor_bps = config.parse_or("gas_limit_factor_bps", 12_000u32)?;
        if !(10_000..=30_000).contains(&gas_limit_factor_bps) {
            return Err(format!("config key `gas_limit_factor_bps`: {gas_limit_factor_bps} is outside 10000..=30000"));
        }
        Ok(Settings {
            percentiles,
            base_fee_multiplier_bps: config.parse_or("base_fee_multiplier_bps", 20_000u32)?,
            bump_bps,
            max_fee: config.amount("max_fee")?,
            min_priority_fee: config.amount("min_priority_fee")?.unwrap_or(GWEI),
            gas_limit_factor_bps,
        })
    }

    fn tier_percentile(&self, speed: Speed) -> u8 {
        self.percentiles[match speed {
            Speed::SafeLow => 0,
            Speed::Average => 1,
            Speed::Fast => 2,
            Speed::Fastest => 3,
        }]
    }

    fn price(&self, request: &Request, market: &FeeMarket) -> FeeDecision {
        let cap = self.max_fee.map_or(market.max_fee_cap, |own| own.min(market.max_fee_cap));
        let tier = market.priority_fee_at(self.tier_percentile(request.speed)).unwrap_or(self.min_priority_fee);
        let headroom = market.base_fee.saturating_mul(U256::from(self.base_fee_multiplier_bps)) / U256::from(10_000u64);
        let mut priority_fee = tier;
        let mut max_fee = headroom.saturating_add(tier);
        if let Some(previous) = market.previous {
            priority_fee = priority_fee.max(bump(previous.priority_fee, self.bump_bps));
            max_fee = max_fee.max(bump(previous.max_fee, self.bump_bps)).max(priority_fee);
            if max_fee > cap {
                return FeeDecision::CannotBump(format!(
                    "a replacement needs a max fee of at least {max_fee} wei but the cap is {cap} wei"
                ));
            }
        }
        let max_fee = max_fee.min(cap);
        FeeDecision::Quote(FeeQuote {
            max_fee,
            priority_fee: priority_fee.min(max_fee),
            gas_limit_factor_bps: self.gas_limit_factor_bps,
        })
    }
}

impl Fee for Eip1559 {
    fn check_config(config: &Config) -> Result<(), String> {
        Settings::from_config(config).map(drop)
    }

    fn price(config: &Config, request: &Request, market: &FeeMarket) -> FeeDecision {
        match Settings::from_config(config) {
            Ok(settings) => settings.price(request, market),
            // The host rejects such a config at load; never price blind.
            Err(e) => FeeDecision::CannotBump(format!("fee plugin misconfigured: {e}")),
        }
    }
}

switchyard_sdk::export_fee!(Eip1559);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::fee::AttemptFees;
    use switchyard_sdk::testing::{check_fee_config, config, market, price, request};

    fn gwei(n: u64) -> U256 {
        GWEI * U256::from(n)
    }

    fn quote(cfg: &Config, speed: Speed, market: &FeeMarket) -> FeeQuote {
        match price::<Eip1559>(cfg, &Request { speed, ..request() }, market) {
            FeeDecision::Quote(q) => q,
            other => panic!("expected a quote, got {other:?}"),
        }
    }

    #[test]
    fn tiers_follow_the_percentiles() {
        // market(): base 10 gwei; p10 1, p25 2, p50 3, p75 5, p95 8 gwei.
        let cfg = config(&[]);
        let expect = [(Speed::SafeLow, 1), (Speed::Average, 3), (Speed::Fast, 5), (Speed::Fastest, 8)];
        for (speed, tip) in expect {
            let q = quote(&cfg, speed, &market());
            assert_eq!(q.priority_fee, gwei(tip), "{speed:?}");
            assert_eq!(q.max_fee, gwei(20 + tip), "{speed:?}: 2x base fee + tip");
            assert_eq!(q.gas_limit_factor_bps, 12_000);
        }
    }

    #[test]
    fn first_attempt_is_clamped_to_the_cap() {
        let q = quote(&config(&[("max_fee", "15 gwei")]), Speed::Fastest, &market());
        assert_eq!((q.max_fee, q.priority_fee), (gwei(15), gwei(8)));
        let tight = FeeMarket { max_fee_cap: gwei(4), ..market() };
        let q = quote(&config(&[]), Speed::Fastest, &tight);
        assert_eq!((q.max_fee, q.priority_fee), (gwei(4), gwei(4)), "priority never above max");
    }

    #[test]
    fn replacement_bumps_both_fees_by_at_least_the_bump() {
        let previous = AttemptFees { max_fee: gwei(100), priority_fee: gwei(10) };
        let replacing = FeeMarket { previous: Some(previous), ..market() };
        let q = quote(&config(&[]), Speed::Average, &replacing);
        assert_eq!(q.max_fee, gwei(100) + gwei(100) / U256::from(8u64), "12.5% over 100 gwei");
        assert_eq!(q.priority_fee, gwei(10) + gwei(10) / U256::from(8u64));
        assert!(q.max_fee * U256::from(10u64) >= previous.max_fee * U256::from(11u64));
    }

    #[test]
    fn cannot_bump_under_the_cap() {
        let previous = AttemptFees { max_fee: gwei(480), priority_fee: gwei(10) };
        let stuck = FeeMarket { previous: Some(previous), ..market() };
        let FeeDecision::CannotBump(reason) = price::<Eip1559>(&config(&[]), &request(), &stuck) else {
            panic!("quoted a replacement above the cap");
        };
        assert!(reason.contains("cap is 500000000000 wei"), "{reason}");
    }

    #[test]
    fn empty_market_uses_the_minimum_priority_fee() {
        let empty = FeeMarket { priority_fees: vec![], ..market() };
        let q = quote(&config(&[("min_priority_fee", "2 gwei")]), Speed::Fast, &empty);
        assert_eq!(q.priority_fee, gwei(2));
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = check_fee_config::<Eip1559>(&config(&[("bump_bps", "500")])).unwrap_err();
        assert!(err.contains("`bump_bps`"), "{err}");
        let err = check_fee_config::<Eip1559>(&config(&[("fast_percentile", "100")])).unwrap_err();
        assert!(err.contains("`fast_percentile`"), "{err}");
        let err = check_fee_config::<Eip1559>(&config(&[("max_fee", "1.5 gwei")])).unwrap_err();
        assert!(err.contains("`max_fee`"), "{err}");
    }
}
