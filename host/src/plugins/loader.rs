//! Turns plugin bytes into a validated, pre-instantiated plugin, or a
//! `LoadError` saying why not. Nothing here runs on the request path.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use wasmtime::Store;

use super::answers;
use super::cache::{CacheOutcome, sha256_hex};
use super::engine::Runtime;
use super::error::{LoadError, PluginError};
use super::fixtures;
use super::sandbox::{self, Limits, PluginState};
use super::types::{Candidate, FeeDecision, FeeMarket, PluginId, PluginKind, Selection, TxRequest, Usage, Verdict};
use super::wit::{Bindings, Instance, SUPPORTED_VERSIONS};

const PLUGIN_PACKAGE: &str = "switchyard:plugin/";

/// WASI interfaces a plugin may import; each is granted in
/// `sandbox` as documented there. Anything else is refused.
const GRANTED_WASI: &[&str] = &["wasi:io/", "wasi:cli/", "wasi:clocks/wall-clock@", "wasi:random/", "wasi:filesystem/"];

/// What to load into a slot.
#[derive(Clone, Debug)]
pub(crate) struct PluginSource<'a> {
    pub(crate) name: &'a str,
    pub(crate) bytes: &'a [u8],
    /// sha256 of `bytes`: the plugin's version hash.
    pub(crate) digest: String,
    /// The slot's kind; `None` accepts whatever kind the plugin is.
    pub(crate) expected: Option<PluginKind>,
    pub(crate) config: Vec<(String, String)>,
    pub(crate) limits: Limits,
}

impl<'a> PluginSource<'a> {
    pub(crate) fn new(
        name: &'a str,
        bytes: &'a [u8],
        expected: Option<PluginKind>,
        config: Vec<(String, String)>,
        limits: Limits,
    ) -> Self {
        PluginSource { name, bytes, digest: sha256_hex(bytes), expected, config, limits }
    }
}

/// A plugin that passed validation, ready to serve decisions.
pub(crate) struct LoadedPlugin {
    pub(crate) id: PluginId,
    pub(crate) kind: PluginKind,
    pub(crate) config: Vec<(String, String)>,
    pub(crate) limits: Limits,
    pub(crate) cache: CacheOutcome,
    pub(crate) imports: Vec<String>,
    name: Arc<str>,
    bindings: Bindings,
}

/// Blocks while the plugin compiles and is validated: the watcher and the
/// start-up call it off the async runtime's worker threads.
pub(crate) fn load(runtime: &Runtime, source: PluginSource<'_>) -> Result<LoadedPlugin, LoadError> {
    check_header(source.bytes)?;
    let (component, cache) = runtime
        .cache
        .load_or_compile(&runtime.engine, source.bytes, &source.digest)
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;

    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(&runtime.engine).map(|(name, _)| name.to_string()).collect();
    let (kind, wit_version) = plugin_interface(&exports)?;
    if let Some(expected) = source.expected.filter(|e| *e != kind) {
        return Err(LoadError::WrongKind { expected, found: kind });
    }
    if !SUPPORTED_VERSIONS.contains(&wit_version.as_str()) {
        return Err(LoadError::UnsupportedVersion { found: wit_version, supported: SUPPORTED_VERSIONS.join(", ") });
    }
    let imports: Vec<String> = ty.imports(&runtime.engine).map(|(name, _)| name.to_string()).collect();
    check_imports(&imports)?;

    let pre = runtime.linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let bindings = Bindings::new(&wit_version, kind, pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let plugin = LoadedPlugin {
        id: PluginId { name: source.name.to_string(), version_hash: source.digest, wit_version },
        kind,
        config: source.config,
        limits: source.limits,
        cache,
        imports,
        name: Arc::from(source.name),
        bindings,
    };
    // Plugin calls are async. A thread of its own has no runtime that
    // blocking on them could stall, whichever thread loads.
    std::thread::scope(|scope| {
        let validating = scope.spawn(|| wasmtime_wasi::runtime::in_tokio(plugin.validate(runtime)));
        validating.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    Ok(plugin)
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(LoadError::CoreModule),
        Some([0, b'a', b's', b'm', ..]) => Ok(()),
        _ => Err(LoadError::NotWasm),
    }
}

/// The one `switchyard:plugin/<kind>@<version>` interface a plugin exports.
fn plugin_interface(exports: &[String]) -> Result<(PluginKind, String), LoadError> {
    let found: Vec<(PluginKind, String)> = exports
        .iter()
        .filter_map(|name| {
            let (interface, version) = name.strip_prefix(PLUGIN_PACKAGE)?.split_once('@')?;
            Some((interface.parse().ok()?, version.to_string()))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(LoadError::NotAPlugin {
            found: if exports.is_empty() { "no exports".into() } else { exports.join(", ") },
        }),
        several => {
            Err(LoadError::SeveralKinds(several.iter().map(|(k, v)| format!("{k}@{v}")).collect::<Vec<_>>().join(", ")))
        }
    }
}

/// Refuses any import outside the grant; when there are several, names the
/// most serious (network first).
/// Why the host refuses an import, ranked (0 worst), or `None` when it is
/// granted.
fn import_refusal(import: &str) -> Option<(u8, &'static str)> {
    let own =
        import.strip_prefix(PLUGIN_PACKAGE).is_some_and(|rest| rest.starts_with("log@") || rest.starts_with("types@"));
    if own || GRANTED_WASI.iter().any(|prefix| import.starts_with(prefix)) {
        None
    } else if import.starts_with("wasi:sockets/") || import.starts_with("wasi:http/") {
        Some((0, "plugins get no network access"))
    } else if import.starts_with("wasi:clocks/monotonic-clock@") {
        Some((1, "it lets a plugin sleep inside the host, beyond its deadline"))
    } else {
        Some((2, "it is not part of the plugin contract"))
    }
}

pub(crate) fn check_imports(imports: &[String]) -> Result<(), LoadError> {
    let worst = imports
        .iter()
        .filter_map(|i| import_refusal(i).map(|(rank, why)| (rank, i, why)))
        .min_by_key(|(rank, ..)| *rank);
    match worst {
        Some((_, import, why)) => Err(LoadError::ForbiddenImport { import: import.clone(), why }),
        None => Ok(()),
    }
}

/// What `switchyard plugin inspect` shows of a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub size: usize,
    pub sha256: String,
    /// The plugin interface it exports and its WIT version, if exactly one.
    pub plugin: Option<(PluginKind, String)>,
    /// Each import, with why the host refuses it if it does.
    pub imports: Vec<(String, Option<&'static str>)>,
    pub exports: Vec<String>,
}

/// Compiles `bytes` and reads its interface; runs nothing.
pub(crate) fn inspect(runtime: &Runtime, bytes: &[u8]) -> Result<Inspection, LoadError> {
    check_header(bytes)?;
    let sha256 = sha256_hex(bytes);
    let (component, _) = runtime
        .cache
        .load_or_compile(&runtime.engine, bytes, &sha256)
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(&runtime.engine).map(|(name, _)| name.to_string()).collect();
    let imports = ty
        .imports(&runtime.engine)
        .map(|(name, _)| (name.to_string(), import_refusal(name).map(|(_, why)| why)))
        .collect();
    Ok(Inspection { size: bytes.len(), sha256, plugin: plugin_interface(&exports).ok(), imports, exports })
}

impl LoadedPlugin {
    pub(crate) fn info(&self) -> super::PluginInfo {
        super::PluginInfo {
            id: self.id.clone(),
            kind: self.kind,
            imports: self.imports.clone(),
            cache: self.cache,
            limits: self.limits,
        }
    }

    /// The configuration check and the smoke call with fixture inputs.
    async fn validate(&self, runtime: &Runtime) -> Result<(), LoadError> {
        let smoke = |fixture, error| LoadError::SmokeFailed { fixture, error };
        self.call(runtime, async |instance, store| instance.check_config(store, &self.config).await)
            .await
            .map_err(|e| smoke("check-config", e))?
            .map_err(LoadError::ConfigRejected)?;
        match self.kind {
            PluginKind::Selector => {
                let candidates = fixtures::candidates();
                self.select(runtime, &fixtures::request(), &candidates, 0).await.map_err(|e| smoke("select", e))?;
            }
            PluginKind::Policy => {
                let evaluated = self.evaluate(runtime, &fixtures::request(), fixtures::usage()).await;
                evaluated.map_err(|e| smoke("evaluate", e))?;
            }
            PluginKind::Fee => {
                let request = fixtures::request();
                self.price(runtime, &request, &fixtures::market()).await.map_err(|e| smoke("price", e))?;
                let replacing = self.price(runtime, &request, &fixtures::replacement_market()).await;
                replacing.map_err(|e| smoke("price a replacement", e))?;
            }
        }
        Ok(())
    }

    /// Runs `f` on a fresh instance in a fresh sandbox.
    async fn call<T>(
        &self,
        runtime: &Runtime,
        f: impl AsyncFnOnce(&Instance, &mut Store<PluginState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        let _permit = runtime.gate.enter().await;
        let mut store = sandbox::new_store(&runtime.engine, &self.name, &self.limits);
        // A host function that panics must cost this decision, not the host.
        let outcome = AssertUnwindSafe(async {
            let instance = self.bindings.instantiate(&mut store).await.map_err(|e| (true, e))?;
            f(&instance, &mut store).await.map_err(|e| (false, e))
        })
        .catch_unwind()
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            // Before the call there is no answer to be malformed: a failure
            // that is neither a trap nor the memory cap is the instantiation's.
            Ok(Err((instantiating, error))) => Err(match sandbox::classify(&error, &store, &self.limits) {
                PluginError::MalformedAnswer(_) if instantiating => PluginError::Instantiate(format!("{error:#}")),
                other => other,
            }),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(PluginError::Trap(format!("the host panicked while serving the plugin: {message}")))
            }
        }
    }

    pub(crate) async fn select(
        &self,
        runtime: &Runtime,
        request: &TxRequest,
        candidates: &[Candidate],
        sequence: u64,
    ) -> Result<Selection, PluginError> {
        let answer = self
            .call(runtime, async |i, store| i.select(store, &self.config, request, candidates, sequence).await)
            .await?;
        answers::check_selection(&answer, candidates).map_err(PluginError::MalformedAnswer)?;
        Ok(answer)
    }

    pub(crate) async fn evaluate(
        &self,
        runtime: &Runtime,
        request: &TxRequest,
        usage: Usage,
    ) -> Result<Verdict, PluginError> {
        let answer = self.call(runtime, async |i, store| i.evaluate(store, &self.config, request, usage).await).await?;
        answers::check_verdict(&answer, request).map_err(PluginError::MalformedAnswer)?;
        Ok(answer)
    }

    pub(crate) async fn price(
        &self,
        runtime: &Runtime,
        request: &TxRequest,
        market: &FeeMarket,
    ) -> Result<FeeDecision, PluginError> {
        let answer = self.call(runtime, async |i, store| i.price(store, &self.config, request, market).await).await?;
        answers::check_fee(&answer, market).map_err(PluginError::MalformedAnswer)?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_components_from_modules_and_junk() {
        assert!(matches!(check_header(b"hello world"), Err(LoadError::NotWasm)));
        assert!(matches!(check_header(&[0, b'a', b's', b'm', 1, 0, 0, 0]), Err(LoadError::CoreModule)));
        assert!(check_header(&[0, b'a', b's', b'm', 0x0d, 0, 1, 0]).is_ok());
        assert!(matches!(check_header(b"\0as"), Err(LoadError::NotWasm)));
    }

    #[test]
    fn network_imports_are_refused_by_name() {
        let ok = ["switchyard:plugin/log@0.1.0", "wasi:io/streams@0.2.6", "wasi:filesystem/preopens@0.2.6"];
        assert!(check_imports(&ok.map(String::from)).is_ok());
        let err = check_imports(&["wasi:sockets/tcp@0.2.6".to_string()]).unwrap_err();
        assert!(err.to_string().contains("no network access"), "{err}");
        let err = check_imports(&["wasi:clocks/monotonic-clock@0.2.6".to_string()]).unwrap_err();
        assert!(err.to_string().contains("sleep"), "{err}");
        let err = check_imports(&["acme:evil/spy@1.0.0".to_string()]).unwrap_err();
        assert!(err.to_string().contains("not part of the plugin contract"), "{err}");
        let both = ["wasi:clocks/monotonic-clock@0.2.6", "wasi:sockets/tcp@0.2.6"].map(String::from);
        assert!(check_imports(&both).unwrap_err().to_string().contains("no network access"));
    }

    #[test]
    fn exactly_one_plugin_interface_is_expected() {
        let one = ["switchyard:plugin/fee@0.1.0".to_string()];
        assert_eq!(plugin_interface(&one).unwrap(), (PluginKind::Fee, "0.1.0".into()));
        assert!(matches!(plugin_interface(&["wasi:cli/run@0.2.6".into()]), Err(LoadError::NotAPlugin { .. })));
        let two = ["switchyard:plugin/fee@0.1.0".to_string(), "switchyard:plugin/policy@0.1.0".to_string()];
        assert!(matches!(plugin_interface(&two), Err(LoadError::SeveralKinds(_))));
    }
}

#[cfg(test)]
mod cost_breakdown {
    //! Where a decision's time goes; run in release:
    //! `cargo test --release -p switchyard --lib cost_breakdown -- --ignored --nocapture`.
    //! Measures the example round-robin, or the selector component at
    //! `$BREAKDOWN_WASM`.
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore = "a measurement, not a check"]
    fn stages() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let path = std::env::var_os("BREAKDOWN_WASM")
            .filter(|p| !p.is_empty())
            .map_or_else(|| root.join("target/example-plugins/selector_round_robin.wasm"), Into::into);
        let bytes = std::fs::read(&path).unwrap();
        let runtime = Runtime::new(super::super::EngineSettings::default()).unwrap();
        let plugin = load(&runtime, PluginSource::new("rr", &bytes, None, vec![], Limits::default())).unwrap();
        let request = fixtures::request();
        let candidates: Vec<Candidate> = (0..16)
            .map(|i| Candidate {
                id: format!("r{i:02}"),
                labels: vec![("region".into(), "eu".into())],
                healthy: true,
                ..Default::default()
            })
            .collect();
        let n = 20_000;
        let time = |label: &str, f: &mut dyn FnMut()| {
            for _ in 0..1000 {
                f();
            }
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            eprintln!("{label:<40} {:>8.2?}", start.elapsed() / n);
        };
        time("store", &mut || drop(sandbox::new_store(&runtime.engine, &plugin.name, &plugin.limits)));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        time("store + instantiate", &mut || {
            let mut store = sandbox::new_store(&runtime.engine, &plugin.name, &plugin.limits);
            let _instance = rt.block_on(plugin.bindings.instantiate(&mut store)).unwrap();
        });
        time("store + instantiate + check-config", &mut || {
            let mut store = sandbox::new_store(&runtime.engine, &plugin.name, &plugin.limits);
            rt.block_on(async {
                let i = plugin.bindings.instantiate(&mut store).await.unwrap();
                i.check_config(&mut store, &plugin.config).await.unwrap().unwrap();
            });
        });
        time("select, 16 candidates", &mut || {
            rt.block_on(plugin.select(&runtime, &request, &candidates, 1)).unwrap();
        });
        time("select, 1 candidate", &mut || {
            rt.block_on(plugin.select(&runtime, &request, &candidates[..1], 1)).unwrap();
        });

        // The floor of any isolated decision on this engine: a fresh store
        // and instance of the smallest module that has a memory, one call.
        let module = wasmtime::Module::new(&runtime.engine, FLOOR_MODULE).unwrap();
        let pre = wasmtime::Linker::<()>::new(&runtime.engine).instantiate_pre(&module).unwrap();
        time("floor: empty core module, store + instantiate + call", &mut || {
            let mut store = Store::new(&runtime.engine, ());
            store.set_epoch_deadline(1 << 20);
            let instance = pre.instantiate(&mut store).unwrap();
            let f = instance.get_typed_func::<(), i32>(&mut store, "f").unwrap();
            assert_eq!(f.call(&mut store, ()).unwrap(), 7);
        });
    }

    /// `(module (memory 1) (func (export "f") (result i32) i32.const 0 i32.const 7 i32.store i32.const 7))`
    const FLOOR_MODULE: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // header
        0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type: () -> i32
        0x03, 0x02, 0x01, 0x00, // function 0 has type 0
        0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
        0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00, // export "f" = func 0
        0x0a, 0x0d, 0x01, 0x0b, 0x00, // code: one body of 11 bytes, no locals
        0x41, 0x00, 0x41, 0x07, 0x36, 0x02, 0x00, // i32.store [0] = 7
        0x41, 0x07, 0x0b, // i32.const 7, end
    ];
}
