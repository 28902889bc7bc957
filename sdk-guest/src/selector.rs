//! Selector plugins choose which relayer sends a transaction.

use std::marker::PhantomData;

use crate::bindings::selector_world::exports::switchyard::plugin::selector as wit;
use crate::types::{u256_from_wit, u256_to_wit};
use crate::{Address, Config, Labels, Request, U256};

/// A relayer the transaction may be sent through, with live stats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub address: Address,
    pub weight: u32,
    pub labels: Labels,
    pub pending_count: u32,
    pub healthy: bool,
    pub balance: U256,
    /// Recent success rate in basis points, 0..=10000.
    pub success_rate_bps: u32,
    pub latency_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The id of the chosen candidate.
    Chosen(String),
    Refused(String),
}

impl Selection {
    pub fn chosen(candidate: &Candidate) -> Self {
        Selection::Chosen(candidate.id.clone())
    }

    pub fn refused(reason: impl Into<String>) -> Self {
        Selection::Refused(reason.into())
    }
}

/// Implement this and export it with [`export_selector!`](crate::export_selector).
///
/// Each call runs in a fresh instance: a plugin keeps no state between
/// decisions. `sequence` grows by one with every decision of the host, which
/// is what a rotating strategy needs.
pub trait Selector {
    /// Rejects a configuration the plugin cannot work with. The host calls it
    /// when the plugin or its configuration is loaded.
    fn check_config(_config: &Config) -> Result<(), String> {
        Ok(())
    }

    fn select(config: &Config, request: &Request, candidates: &[Candidate], sequence: u64) -> Selection;
}

/// Picks the `sequence`-th of `candidates` in id order: round-robin for a
/// stateless plugin. `None` when there is no candidate.
pub fn rotate<'a>(candidates: impl IntoIterator<Item = &'a Candidate>, sequence: u64) -> Option<&'a Candidate> {
    let mut ordered: Vec<&Candidate> = candidates.into_iter().collect();
    if ordered.is_empty() {
        return None;
    }
    ordered.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let index = (sequence % ordered.len() as u64) as usize;
    Some(ordered[index])
}

/// Bridges a [`Selector`] to the generated bindings. Used by
/// [`export_selector!`](crate::export_selector) and the test harness.
#[doc(hidden)]
#[derive(Debug)]
pub struct Export<T>(PhantomData<T>);

impl<T: Selector> wit::Guest for Export<T> {
    fn check_config(config: Vec<(String, String)>) -> Result<(), String> {
        crate::log::report_panics();
        T::check_config(&Config::new(config))
    }

    fn select(
        config: Vec<(String, String)>,
        request: crate::bindings::types::TxRequest,
        candidates: Vec<wit::Candidate>,
        sequence: u64,
    ) -> wit::Selection {
        crate::log::report_panics();
        let candidates: Vec<Candidate> = candidates.into_iter().map(Candidate::from).collect();
        match T::select(&Config::new(config), &request.into(), &candidates, sequence) {
            Selection::Chosen(id) => wit::Selection::Chosen(id),
            Selection::Refused(reason) => wit::Selection::Refused(reason),
        }
    }
}

impl From<wit::Candidate> for Candidate {
    fn from(c: wit::Candidate) -> Self {
        Candidate {
            id: c.id,
            address: c.address.into(),
            weight: c.weight,
            labels: Labels(c.labels),
            pending_count: c.pending_count,
            healthy: c.healthy,
            balance: u256_from_wit(c.balance),
            success_rate_bps: c.success_rate_bps,
            latency_ms: c.latency_ms,
        }
    }
}

impl From<Candidate> for wit::Candidate {
    fn from(c: Candidate) -> Self {
        wit::Candidate {
            id: c.id,
            address: c.address.into(),
            weight: c.weight,
            labels: c.labels.0,
            pending_count: c.pending_count,
            healthy: c.healthy,
            balance: u256_to_wit(c.balance),
            success_rate_bps: c.success_rate_bps,
            latency_ms: c.latency_ms,
        }
    }
}

/// Exports a [`Selector`] as the plugin's `switchyard:plugin/selector`.
#[macro_export]
macro_rules! export_selector {
    ($selector:ty) => {
        // Natively the crate is only linked for unit tests, and a native
        // cdylib cannot carry component export names.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardSelector = $crate::selector::Export<$selector>;
            $crate::bindings::selector_world::__export_selector_world!(__SwitchyardSelector with_types_in $crate::bindings::selector_world);
        };
    };
}
