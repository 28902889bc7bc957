//! The inputs of the smoke call every plugin must pass before it serves: a
//! plain transfer request, three relayers (one unhealthy), a fee market and
//! the same market for a replacement.

use alloy_primitives::{Address, U256};

use super::types::{AttemptFees, Candidate, FeeMarket, Speed, TxRequest, Usage};

const GWEI: u64 = 1_000_000_000;

pub fn request() -> TxRequest {
    TxRequest {
        id: "smoke-test".into(),
        chain_id: 31337,
        to: Some(Address::with_last_byte(1)),
        value: U256::from(GWEI),
        data: Vec::new(),
        gas_limit: Some(21_000),
        speed: Speed::Average,
        api_key_id: "smoke-test".into(),
        hints: Vec::new(),
    }
}

pub fn candidates() -> Vec<Candidate> {
    let relayer = |id: &str, n: u8, pending_count: u32, healthy: bool| Candidate {
        id: id.into(),
        address: Address::with_last_byte(n),
        weight: 1,
        labels: Vec::new(),
        pending_count,
        healthy,
        balance: U256::from(10u64).pow(U256::from(18)),
        success_rate_bps: 10_000,
        latency_ms: 20,
    };
    vec![relayer("relayer-a", 0xa, 0, true), relayer("relayer-b", 0xb, 2, true), relayer("relayer-c", 0xc, 0, false)]
}

pub fn usage() -> Usage {
    Usage { requests_today: 0 }
}

pub fn market() -> FeeMarket {
    let gwei = |n: u64| U256::from(n * GWEI);
    FeeMarket {
        base_fee: gwei(10),
        priority_fees: vec![(10, gwei(1)), (25, gwei(2)), (50, gwei(3)), (75, gwei(5)), (95, gwei(8))],
        max_fee_cap: gwei(500),
        previous: None,
    }
}

pub fn replacement_market() -> FeeMarket {
    let gwei = |n: u64| U256::from(n * GWEI);
    FeeMarket { previous: Some(AttemptFees { max_fee: gwei(25), priority_fee: gwei(3) }), ..market() }
}
