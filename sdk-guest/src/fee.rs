//! Fee plugins price a transaction (EIP-1559), for its first attempt and for
//! replacements of a stuck one.

use std::marker::PhantomData;

use crate::bindings::fee_world::exports::switchyard::plugin::fee as wit;
use crate::types::{u256_from_wit, u256_to_wit};
use crate::{Config, Request, U256};

/// The fees of one attempt, per gas, in wei.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptFees {
    pub max_fee: U256,
    pub priority_fee: U256,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeeMarket {
    /// The next block's base fee per gas.
    pub base_fee: U256,
    /// Recent priority fees by percentile, ascending by percentile.
    pub priority_fees: Vec<(u8, U256)>,
    /// The operator's cap on max fee per gas; the host refuses quotes above it.
    pub max_fee_cap: U256,
    /// Set when this is a replacement of a stuck attempt.
    pub previous: Option<AttemptFees>,
}

impl FeeMarket {
    /// The priority fee at the first reported percentile at or above
    /// `percentile`, else the highest reported one. `None` when the host
    /// reported none.
    pub fn priority_fee_at(&self, percentile: u8) -> Option<U256> {
        self.priority_fees.iter().find(|(p, _)| *p >= percentile).or(self.priority_fees.last()).map(|(_, fee)| *fee)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeQuote {
    pub max_fee: U256,
    pub priority_fee: U256,
    /// Multiplier on the estimated gas limit in basis points, 10000..=30000.
    pub gas_limit_factor_bps: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeeDecision {
    Quote(FeeQuote),
    /// A replacement must raise both fees by at least 10% and the cap forbids
    /// it: the transaction stays pending with this reason.
    CannotBump(String),
}

/// Implement this and export it with [`export_fee!`](crate::export_fee).
pub trait Fee {
    /// Rejects a configuration the plugin cannot work with.
    fn check_config(_config: &Config) -> Result<(), String> {
        Ok(())
    }

    fn price(config: &Config, request: &Request, market: &FeeMarket) -> FeeDecision;
}

/// `value` raised by `bps` basis points, rounded up: `bump(100, 1000) == 110`.
pub fn bump(value: U256, bps: u32) -> U256 {
    let scaled = value.saturating_mul(U256::from(10_000u64 + u64::from(bps)));
    scaled.div_ceil(U256::from(10_000u64))
}

#[doc(hidden)]
#[derive(Debug)]
pub struct Export<T>(PhantomData<T>);

impl<T: Fee> wit::Guest for Export<T> {
    fn check_config(config: Vec<(String, String)>) -> Result<(), String> {
        crate::log::report_panics();
        T::check_config(&Config::new(config))
    }

    fn price(
        config: Vec<(String, String)>,
        request: crate::bindings::types::TxRequest,
        market: wit::FeeMarket,
    ) -> wit::FeeDecision {
        crate::log::report_panics();
        match T::price(&Config::new(config), &request.into(), &market.into()) {
            FeeDecision::Quote(q) => wit::FeeDecision::Quote(wit::FeeQuote {
                max_fee: u256_to_wit(q.max_fee),
                priority_fee: u256_to_wit(q.priority_fee),
                gas_limit_factor_bps: q.gas_limit_factor_bps,
            }),
            FeeDecision::CannotBump(reason) => wit::FeeDecision::CannotBump(reason),
        }
    }
}

impl From<wit::FeeMarket> for FeeMarket {
    fn from(m: wit::FeeMarket) -> Self {
        FeeMarket {
            base_fee: u256_from_wit(m.base_fee),
            priority_fees: m.priority_fees.into_iter().map(|p| (p.percentile, u256_from_wit(p.fee))).collect(),
            max_fee_cap: u256_from_wit(m.max_fee_cap),
            previous: m.previous.map(|p| AttemptFees {
                max_fee: u256_from_wit(p.max_fee),
                priority_fee: u256_from_wit(p.priority_fee),
            }),
        }
    }
}

impl From<FeeMarket> for wit::FeeMarket {
    fn from(m: FeeMarket) -> Self {
        wit::FeeMarket {
            base_fee: u256_to_wit(m.base_fee),
            priority_fees: m
                .priority_fees
                .into_iter()
                .map(|(percentile, fee)| wit::PercentileFee { percentile, fee: u256_to_wit(fee) })
                .collect(),
            max_fee_cap: u256_to_wit(m.max_fee_cap),
            previous: m.previous.map(|p| wit::AttemptFees {
                max_fee: u256_to_wit(p.max_fee),
                priority_fee: u256_to_wit(p.priority_fee),
            }),
        }
    }
}

impl From<wit::FeeDecision> for FeeDecision {
    fn from(d: wit::FeeDecision) -> Self {
        match d {
            wit::FeeDecision::Quote(q) => FeeDecision::Quote(FeeQuote {
                max_fee: u256_from_wit(q.max_fee),
                priority_fee: u256_from_wit(q.priority_fee),
                gas_limit_factor_bps: q.gas_limit_factor_bps,
            }),
            wit::FeeDecision::CannotBump(reason) => FeeDecision::CannotBump(reason),
        }
    }
}

/// Exports a [`Fee`] as the plugin's `switchyard:plugin/fee`.
#[macro_export]
macro_rules! export_fee {
    ($fee:ty) => {
        // Natively the crate is only linked for unit tests, and a native
        // cdylib cannot carry component export names.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardFee = $crate::fee::Export<$fee>;
    $crate::bindings::fee_world::__export_fee_world!(__SwitchyardFee with_types_in $crate::bindings::fee_world);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_rounds_up() {
        assert_eq!(bump(U256::from(100u64), 1000), U256::from(110u64));
        assert_eq!(bump(U256::from(101u64), 1000), U256::from(112u64));
    }

    #[test]
    fn priority_fee_at_takes_the_next_percentile_up() {
        let m = FeeMarket {
            priority_fees: vec![(10, U256::from(1u64)), (50, U256::from(5u64)), (90, U256::from(9u64))],
            ..Default::default()
        };
        assert_eq!(m.priority_fee_at(50), Some(U256::from(5u64)));
        assert_eq!(m.priority_fee_at(75), Some(U256::from(9u64)));
        assert_eq!(m.priority_fee_at(99), Some(U256::from(9u64)));
        assert_eq!(FeeMarket::default().priority_fee_at(50), None);
    }
}
