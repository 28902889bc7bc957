//! {{name}}: a fee plugin. Pays the market's median priority fee on top of
//! twice the base fee, under the host's cap; a replacement bumps both fees by
//! 12.5%, or answers "cannot bump" when the cap forbids it.

use switchyard_sdk::fee::{Fee, FeeDecision, FeeMarket, FeeQuote, bump};
use switchyard_sdk::{Config, GWEI, Request, U256};

pub struct Plugin;

const BUMP_BPS: u32 = 1250;

impl Fee for Plugin {
    fn price(_: &Config, _: &Request, market: &FeeMarket) -> FeeDecision {
        let (max_fee, priority_fee) = match market.previous {
            Some(previous) => (bump(previous.max_fee, BUMP_BPS), bump(previous.priority_fee, BUMP_BPS)),
            None => {
                let priority = market.priority_fee_at(50).unwrap_or(GWEI);
                (market.base_fee * U256::from(2u8) + priority, priority)
            }
        };
        if market.previous.is_some() && max_fee > market.max_fee_cap {
            return FeeDecision::CannotBump("the bump would exceed the fee cap".into());
        }
        let max_fee = max_fee.min(market.max_fee_cap);
        FeeDecision::Quote(FeeQuote { max_fee, priority_fee: priority_fee.min(max_fee), gas_limit_factor_bps: 12_000 })
    }
}

switchyard_sdk::export_fee!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::fee::AttemptFees;
    use switchyard_sdk::testing::{config, market, price, request};

    #[test]
    fn first_attempt_pays_twice_the_base_fee_plus_the_median_tip() {
        let FeeDecision::Quote(quote) = price::<Plugin>(&config(&[]), &request(), &market()) else { panic!() };
        assert_eq!(quote.priority_fee, GWEI * U256::from(3u8));
        assert_eq!(quote.max_fee, GWEI * U256::from(23u8));
    }

    #[test]
    fn a_replacement_bumps_or_says_it_cannot() {
        let previous = AttemptFees { max_fee: GWEI * U256::from(100u8), priority_fee: GWEI };
        let replacing = FeeMarket { previous: Some(previous), ..market() };
        let FeeDecision::Quote(quote) = price::<Plugin>(&config(&[]), &request(), &replacing) else { panic!() };
        assert_eq!(quote.max_fee, GWEI * U256::from(112u8) + GWEI / U256::from(2u8));
        let capped = FeeMarket { max_fee_cap: GWEI * U256::from(110u8), ..replacing };
        assert!(matches!(price::<Plugin>(&config(&[]), &request(), &capped), FeeDecision::CannotBump(_)));
    }
}
