//! Bindings for plugins built against `switchyard:plugin@0.1.0`.

use alloy_primitives::{Address, U256};
use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::{Config, Store};
use crate::plugins::sandbox::{LogLevel, PluginState};
use crate::plugins::types::{self as domain, PluginKind};

mod selector_world {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "selector-plugin",
        exports: { default: async },
    });
}

mod policy_world {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "policy-plugin",
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::selector_world::switchyard::plugin::types,
            "switchyard:plugin/log": super::selector_world::switchyard::plugin::log,
        },
    });
}

mod fee_world {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "fee-plugin",
        exports: { default: async },
        with: {
            "switchyard:plugin/types": super::selector_world::switchyard::plugin::types,
            "switchyard:plugin/log": super::selector_world::switchyard::plugin::log,
        },
    });
}

use fee_world::exports::switchyard::plugin::fee;
use policy_world::exports::switchyard::plugin::policy;
use selector_world::exports::switchyard::plugin::selector;
use selector_world::switchyard::plugin::{log, types};

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    log::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log(level, &message);
    }
}

pub(crate) enum Pre {
    Selector(selector_world::SelectorPluginPre<PluginState>),
    Policy(policy_world::PolicyPluginPre<PluginState>),
    Fee(fee_world::FeePluginPre<PluginState>),
}

pub(crate) enum Instance {
    Selector(selector_world::SelectorPlugin),
    Policy(policy_world::PolicyPlugin),
    Fee(fee_world::FeePlugin),
}

impl Pre {
    pub(crate) fn new(kind: PluginKind, pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        Ok(match kind {
            PluginKind::Selector => Pre::Selector(selector_world::SelectorPluginPre::new(pre)?),
            PluginKind::Policy => Pre::Policy(policy_world::PolicyPluginPre::new(pre)?),
            PluginKind::Fee => Pre::Fee(fee_world::FeePluginPre::new(pre)?),
        })
    }

    pub(crate) async fn instantiate(&self, store: Store<'_>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::Selector(pre) => Instance::Selector(pre.instantiate_async(store).await?),
            Pre::Policy(pre) => Instance::Policy(pre.instantiate_async(store).await?),
            Pre::Fee(pre) => Instance::Fee(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    pub(crate) async fn check_config(
        &self,
        store: Store<'_>,
        config: Config<'_>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Instance::Selector(p) => p.switchyard_plugin_selector().call_check_config(store, config).await,
            Instance::Policy(p) => p.switchyard_plugin_policy().call_check_config(store, config).await,
            Instance::Fee(p) => p.switchyard_plugin_fee().call_check_config(store, config).await,
        }
    }

    pub(crate) async fn select(
        &self,
        store: Store<'_>,
        config: Config<'_>,
        request: &domain::TxRequest,
        candidates: &[domain::Candidate],
        sequence: u64,
    ) -> wasmtime::Result<domain::Selection> {
        let Instance::Selector(plugin) = self else { wasmtime::bail!("not a selector plugin") };
        let candidates: Vec<selector::Candidate> = candidates.iter().map(candidate).collect();
        let answer = plugin
            .switchyard_plugin_selector()
            .call_select(store, config, &tx_request(request), &candidates, sequence)
            .await?;
        Ok(match answer {
            selector::Selection::Chosen(id) => domain::Selection::Chosen(id),
            selector::Selection::Refused(reason) => domain::Selection::Refused(reason),
        })
    }

    pub(crate) async fn evaluate(
        &self,
        store: Store<'_>,
        config: Config<'_>,
        request: &domain::TxRequest,
        usage: domain::Usage,
    ) -> wasmtime::Result<domain::Verdict> {
        let Instance::Policy(plugin) = self else { wasmtime::bail!("not a policy plugin") };
        let usage = policy::Usage { requests_today: usage.requests_today };
        let answer =
            plugin.switchyard_plugin_policy().call_evaluate(store, config, &tx_request(request), usage).await?;
        Ok(match answer {
            policy::Verdict::Allow => domain::Verdict::Allow,
            policy::Verdict::Deny(reason) => domain::Verdict::Deny(reason),
            policy::Verdict::AllowWithChanges(c) => domain::Verdict::AllowWithChanges(domain::Changes {
                gas_limit: c.gas_limit,
                speed: c.speed.map(from_speed),
            }),
        })
    }

    pub(crate) async fn price(
        &self,
        store: Store<'_>,
        config: Config<'_>,
        request: &domain::TxRequest,
        market: &domain::FeeMarket,
    ) -> wasmtime::Result<domain::FeeDecision> {
        let Instance::Fee(plugin) = self else { wasmtime::bail!("not a fee plugin") };
        let answer =
            plugin.switchyard_plugin_fee().call_price(store, config, &tx_request(request), &fee_market(market)).await?;
        Ok(match answer {
            fee::FeeDecision::Quote(q) => domain::FeeDecision::Quote(domain::FeeQuote {
                max_fee: from_u256(q.max_fee),
                priority_fee: from_u256(q.priority_fee),
                gas_limit_factor_bps: q.gas_limit_factor_bps,
            }),
            fee::FeeDecision::CannotBump(reason) => domain::FeeDecision::CannotBump(reason),
        })
    }
}

fn u256(v: U256) -> types::U256 {
    let [w0, w1, w2, w3] = v.into_limbs();
    types::U256 { w0, w1, w2, w3 }
}

fn from_u256(v: types::U256) -> U256 {
    U256::from_limbs([v.w0, v.w1, v.w2, v.w3])
}

fn address(a: &Address) -> types::Address {
    let b = a.as_slice();
    types::Address {
        hi: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
        mid: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        lo: u32::from_be_bytes(b[16..].try_into().expect("4 bytes")),
    }
}

fn speed(s: domain::Speed) -> types::Speed {
    match s {
        domain::Speed::SafeLow => types::Speed::SafeLow,
        domain::Speed::Average => types::Speed::Average,
        domain::Speed::Fast => types::Speed::Fast,
        domain::Speed::Fastest => types::Speed::Fastest,
    }
}

fn from_speed(s: types::Speed) -> domain::Speed {
    match s {
        types::Speed::SafeLow => domain::Speed::SafeLow,
        types::Speed::Average => domain::Speed::Average,
        types::Speed::Fast => domain::Speed::Fast,
        types::Speed::Fastest => domain::Speed::Fastest,
    }
}

fn tx_request(r: &domain::TxRequest) -> types::TxRequest {
    types::TxRequest {
        id: r.id.clone(),
        chain_id: r.chain_id,
        to: r.to.as_ref().map(address),
        value: u256(r.value),
        data: r.data.clone(),
        gas_limit: r.gas_limit,
        speed: speed(r.speed),
        api_key_id: r.api_key_id.clone(),
        hints: r.hints.clone(),
    }
}

fn candidate(c: &domain::Candidate) -> selector::Candidate {
    selector::Candidate {
        id: c.id.clone(),
        address: address(&c.address),
        weight: c.weight,
        labels: c.labels.clone(),
        pending_count: c.pending_count,
        healthy: c.healthy,
        balance: u256(c.balance),
        success_rate_bps: c.success_rate_bps,
        latency_ms: c.latency_ms,
    }
}

fn fee_market(m: &domain::FeeMarket) -> fee::FeeMarket {
    fee::FeeMarket {
        base_fee: u256(m.base_fee),
        priority_fees: m
            .priority_fees
            .iter()
            .map(|(p, fee)| fee::PercentileFee { percentile: *p, fee: u256(*fee) })
            .collect(),
        max_fee_cap: u256(m.max_fee_cap),
        previous: m.previous.map(|p| fee::AttemptFees { max_fee: u256(p.max_fee), priority_fee: u256(p.priority_fee) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u256_limbs_round_trip() {
        let v = U256::from(0x1234_5678_u64) << 200 | U256::from(42u64);
        assert_eq!(from_u256(u256(v)), v);
        assert_eq!(u256(U256::from(7u64)).w0, 7);
    }

    #[test]
    fn address_is_big_endian_across_the_record() {
        let a: Address = "0x0102030405060708090a0b0c0d0e0f1011121314".parse().unwrap();
        let w = address(&a);
        assert_eq!((w.hi, w.mid, w.lo), (0x0102030405060708, 0x090a0b0c0d0e0f10, 0x11121314));
    }
}
