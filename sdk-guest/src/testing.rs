//! The test harness for plugin authors.
//!
//! The `select`, `evaluate` and `price` functions call a plugin through the
//! same export glue the host calls (WIT types in, WIT types out), so a unit
//! test covers the conversions too. The same tests run natively with
//! `cargo test` and inside the guest with `cargo test --target wasm32-wasip2`,
//! where `switchyard plugin test-runner` runs the test binary in the real
//! sandbox.
//!
//! Fixtures are plain values: adjust them with struct update syntax,
//! `Candidate { pending_count: 3, ..candidate("a") }`.

use crate::bindings::fee_world::exports::switchyard::plugin::fee::Guest as _;
use crate::bindings::policy_world::exports::switchyard::plugin::policy::Guest as _;
use crate::bindings::selector_world::exports::switchyard::plugin::selector::Guest as _;
use crate::fee::{Fee, FeeDecision, FeeMarket};
use crate::policy::{Policy, Usage, Verdict};
use crate::selector::{Candidate, Selection, Selector};
use crate::{Address, Config, GWEI, Request, Speed, U256};

pub fn config(pairs: &[(&str, &str)]) -> Config {
    Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// An address whose last byte is `n`.
pub fn address(n: u8) -> Address {
    let mut bytes = [0u8; 20];
    bytes[19] = n;
    Address(bytes)
}

/// A plain transfer of 1 gwei to `address(1)` on chain 31337.
pub fn request() -> Request {
    Request {
        id: "tx-1".into(),
        chain_id: 31337,
        to: Some(address(1)),
        value: GWEI,
        data: Vec::new(),
        gas_limit: Some(21_000),
        speed: Speed::Average,
        api_key_id: "key-1".into(),
        hints: Default::default(),
    }
}

/// A healthy, idle relayer with weight 1 and 1 ether.
pub fn candidate(id: &str) -> Candidate {
    Candidate {
        id: id.into(),
        address: address(id.bytes().fold(0u8, u8::wrapping_add)),
        weight: 1,
        labels: Default::default(),
        pending_count: 0,
        healthy: true,
        balance: U256::from(10u64).pow(U256::from(18u64)),
        success_rate_bps: 10_000,
        latency_ms: 50,
    }
}

/// Base fee 10 gwei; priority fees 1, 2, 3, 5 and 8 gwei at the 10th, 25th,
/// 50th, 75th and 95th percentiles; cap 500 gwei; a first attempt.
pub fn market() -> FeeMarket {
    let gwei = |n: u64| GWEI * U256::from(n);
    FeeMarket {
        base_fee: gwei(10),
        priority_fees: vec![(10, gwei(1)), (25, gwei(2)), (50, gwei(3)), (75, gwei(5)), (95, gwei(8))],
        max_fee_cap: gwei(500),
        previous: None,
    }
}

pub fn select<T: Selector>(config: &Config, request: &Request, candidates: &[Candidate], sequence: u64) -> Selection {
    let answer = crate::selector::Export::<T>::select(
        config.entries(),
        request.clone().into(),
        candidates.iter().cloned().map(Into::into).collect(),
        sequence,
    );
    match answer {
        crate::bindings::selector_world::exports::switchyard::plugin::selector::Selection::Chosen(id) => {
            Selection::Chosen(id)
        }
        crate::bindings::selector_world::exports::switchyard::plugin::selector::Selection::Refused(r) => {
            Selection::Refused(r)
        }
    }
}

pub fn check_selector_config<T: Selector>(config: &Config) -> Result<(), String> {
    crate::selector::Export::<T>::check_config(config.entries())
}

pub fn evaluate<T: Policy>(config: &Config, request: &Request, usage: Usage) -> Verdict {
    let usage = crate::bindings::policy_world::exports::switchyard::plugin::policy::Usage {
        requests_today: usage.requests_today,
    };
    crate::policy::Export::<T>::evaluate(config.entries(), request.clone().into(), usage).into()
}

pub fn check_policy_config<T: Policy>(config: &Config) -> Result<(), String> {
    crate::policy::Export::<T>::check_config(config.entries())
}

pub fn price<T: Fee>(config: &Config, request: &Request, market: &FeeMarket) -> FeeDecision {
    crate::fee::Export::<T>::price(config.entries(), request.clone().into(), market.clone().into()).into()
}

pub fn check_fee_config<T: Fee>(config: &Config) -> Result<(), String> {
    crate::fee::Export::<T>::check_config(config.entries())
}
