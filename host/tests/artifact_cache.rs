//! Compiled plugins are cached on disk by content hash: a restart loads them
//! without recompiling, and a damaged cache entry is recompiled, not loaded.

mod support;

use support::*;
use switchyard::plugins::{CacheOutcome, PluginHost, PluginKind, ReloadOutcome};

fn start(plugins: &std::path::Path, cache: &std::path::Path) -> PluginHost {
    let config = plugins_config(plugins, vec![(PluginKind::Selector, slot("rr.wasm", &[]))]);
    let (host, loaded) = PluginHost::new(&config, engine(Some(cache.to_path_buf()))).unwrap();
    assert!(matches!(loaded[0], ReloadOutcome::Loaded { .. }), "{:?}", loaded[0]);
    host
}

#[test]
fn a_restart_does_not_recompile() {
    let plugins = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("rr.wasm"), example("selector_round_robin")).unwrap();

    let first = start(plugins.path(), cache.path());
    assert_eq!(first.active(PluginKind::Selector).unwrap().cache, CacheOutcome::Compiled);
    drop(first);

    let restarted = start(plugins.path(), cache.path());
    assert_eq!(restarted.active(PluginKind::Selector).unwrap().cache, CacheOutcome::Hit);
    assert!(decide(restarted.select(&request(), &candidates(2))).plugin().is_some());
}

#[test]
fn a_damaged_cache_entry_is_recompiled() {
    let plugins = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("rr.wasm"), example("selector_round_robin")).unwrap();
    drop(start(plugins.path(), cache.path()));

    let artifact = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("an artifact was cached");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();

    let restarted = start(plugins.path(), cache.path());
    assert_eq!(restarted.active(PluginKind::Selector).unwrap().cache, CacheOutcome::Compiled);
    assert!(decide(restarted.select(&request(), &candidates(2))).plugin().is_some());
}
