//! One module per `switchyard:plugin` WIT version a plugin may be built
//! against, as Zed does for its extensions. Each module has its own
//! generated bindings and converts the version-independent types of
//! `plugins::types` to and from them. A new WIT version adds a module; the
//! old ones stay, so plugins built against them keep loading.

use wasmtime::component::{InstancePre, Linker};

use super::sandbox::PluginState;
use super::types::{Candidate, FeeDecision, FeeMarket, PluginKind, Selection, TxRequest, Usage, Verdict};

pub(crate) mod since_v0_1_0;

/// The WIT versions this host loads, oldest first.
pub(crate) const SUPPORTED_VERSIONS: &[&str] = &["0.1.0"];

/// The host imports of every supported version (today: `log`).
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    since_v0_1_0::add_to_linker(linker)
}

/// A component pre-instantiated against the bindings of its WIT version.
pub(crate) enum Bindings {
    V0_1_0(since_v0_1_0::Pre),
}

/// A fresh instance, good for one decision.
pub(crate) enum Instance {
    V0_1_0(since_v0_1_0::Instance),
}

type Store<'a> = &'a mut wasmtime::Store<PluginState>;
// `labels` is a type alias in WIT, so bindgen takes the `Vec` itself.
#[allow(clippy::ptr_arg)]
type Config<'a> = &'a Vec<(String, String)>;

impl Bindings {
    pub(crate) fn new(version: &str, kind: PluginKind, pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        match version {
            "0.1.0" => Ok(Bindings::V0_1_0(since_v0_1_0::Pre::new(kind, pre)?)),
            other => Err(wasmtime::format_err!("unsupported WIT version {other}")),
        }
    }

    pub(crate) async fn instantiate(&self, store: Store<'_>) -> wasmtime::Result<Instance> {
        match self {
            Bindings::V0_1_0(pre) => Ok(Instance::V0_1_0(pre.instantiate(store).await?)),
        }
    }
}

impl Instance {
    pub(crate) async fn check_config(
        &self,
        store: Store<'_>,
        config: Config<'_>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Instance::V0_1_0(i) => i.check_config(store, config).await,
        }
    }

    pub(crate) async fn select(
        &self,
        store: Store<'_>,
        config: Config<'_>,
        request: &TxRequest,
        candidates: &[Candidate],
        sequence: u64,
    ) -> wasmtime::Result<Selection> {
        match self {
            Instance::V0_1_0(i) => i.select(store, config, request, candidates, sequence).await,
        }
    }

    pub(crate) async fn evaluate(
        &self,
        store: Store<'_>,
        config: Config<'_>,
        request: &TxRequest,
        usage: Usage,
    ) -> wasmtime::Result<Verdict> {
        match self {
            Instance::V0_1_0(i) => i.evaluate(store, config, request, usage).await,
        }
    }

    pub(crate) async fn price(
        &self,
        store: Store<'_>,
        config: Config<'_>,
        request: &TxRequest,
        market: &FeeMarket,
    ) -> wasmtime::Result<FeeDecision> {
        match self {
            Instance::V0_1_0(i) => i.price(store, config, request, market).await,
        }
    }
}
