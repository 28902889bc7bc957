//! Hot reload through the real file watcher: swaps under load drop no call,
//! and plugin settings change by editing the config file, without restart.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::*;
use switchyard::config::Config;
use switchyard::plugins::{DecidedBy, PluginHost, PluginKind, PluginWatcher, ReloadOutcome, Selection};

const SLOT_FILE: &str = "selector.wasm";

#[test]
fn swapping_round_robin_for_least_pending_under_load_fails_no_call() {
    let t =
        test_host(&[(SLOT_FILE, example("selector_round_robin"))], vec![(PluginKind::Selector, slot(SLOT_FILE, &[]))]);
    let _watcher = PluginWatcher::start(t.host.clone(), None, Duration::from_millis(50)).unwrap();
    let (old, new) = (sha256(&example("selector_round_robin")), sha256(&example("selector_least_pending")));
    let (stop, calls, failures, new_decisions) =
        (AtomicBool::new(false), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));

    let swap_took = std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let relayers = candidates(16);
                while !stop.load(Ordering::Relaxed) {
                    match decide(t.host.select(&request(), &relayers)).decided_by {
                        DecidedBy::Plugin(id) if id.version_hash == new => {
                            new_decisions.fetch_add(1, Ordering::Relaxed)
                        }
                        DecidedBy::Plugin(id) => {
                            assert_eq!(id.version_hash, old);
                            0
                        }
                        DecidedBy::Fallback { reason, .. } => {
                            eprintln!("failed call: {reason}");
                            failures.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let before = calls.load(Ordering::Relaxed);
        let written = Instant::now();
        // A plain overwrite, as `cp` does: the watcher must not load it half-written.
        std::fs::write(t.dir.path().join(SLOT_FILE), example("selector_least_pending")).unwrap();
        let active = || t.host.active(PluginKind::Selector).is_some_and(|p| p.id.version_hash == new);
        let took = wait_until(Duration::from_secs(10), active).map(|_| written.elapsed());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        assert!(calls.load(Ordering::Relaxed) > before, "the callers were running during the swap");
        took
    });

    assert_eq!(failures.load(Ordering::Relaxed), 0, "calls failed during the swap");
    let took = swap_took.expect("least-pending never became active");
    eprintln!("swap served after {took:?}; {} calls, none failed", calls.load(Ordering::Relaxed));
    assert!(new_decisions.load(Ordering::Relaxed) > 0, "least-pending made decisions after the swap");
    assert_eq!(t.host.rejections(), 0);
}

#[test]
fn a_deleted_plugin_file_leaves_the_loaded_version_serving() {
    let t =
        test_host(&[(SLOT_FILE, example("selector_round_robin"))], vec![(PluginKind::Selector, slot(SLOT_FILE, &[]))]);
    let _watcher = PluginWatcher::start(t.host.clone(), None, Duration::from_millis(20)).unwrap();
    std::fs::remove_file(t.dir.path().join(SLOT_FILE)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || t.host.rejections() > 0).is_some(), "the removal was noticed");
    let decision = decide(t.host.select(&request(), &candidates(2)));
    assert_eq!(decision.plugin().map(|p| p.version_hash.clone()), Some(sha256(&example("selector_round_robin"))));
}

/// Replaces the file atomically, as editors and ConfigMaps do.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_config(path: &std::path::Path, weights: &str) {
    let text = format!(
        "[plugins]\ndir = \".\"\ncache_dir = \"cache\"\n\n[plugins.selector]\nfile = \"weighted.wasm\"\n\n[plugins.selector.config]\nweights = \"{weights}\"\n"
    );
    replace(path, &text);
}

#[test]
fn editing_the_config_file_reconfigures_the_plugin_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weighted.wasm"), example("selector_weighted")).unwrap();
    let config_path = dir.path().join("switchyard.toml");
    write_config(&config_path, "r00=1, r01=0");
    let config = Config::load(&config_path).unwrap();
    let (host, _) = PluginHost::new(&config.plugins, config.plugins.engine_settings(&config.data_dir)).unwrap();
    let host = std::sync::Arc::new(host);
    let _watcher = PluginWatcher::start(host.clone(), Some(config_path.clone()), Duration::from_millis(20)).unwrap();
    let relayers = candidates(2);
    let choice = || decide(host.select(&request(), &relayers)).outcome;
    assert_eq!(choice(), Selection::Chosen("r00".into()));

    write_config(&config_path, "r00=0, r01=1");
    let switched = wait_until(Duration::from_secs(5), || choice() == Selection::Chosen("r01".into()));
    assert!(switched.is_some(), "the new weights never took effect");

    // A config that does not parse, then one the plugin refuses: both are
    // rejected and the running settings stay.
    replace(&config_path, "[plugins.selector\nfile = ");
    std::thread::sleep(Duration::from_millis(300));
    replace(&config_path, "");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(choice(), Selection::Chosen("r01".into()), "an empty config file unloaded the plugin");
    write_config(&config_path, "r00=heavy");
    assert!(wait_until(Duration::from_secs(5), || host.rejections() > 0).is_some(), "the bad weights were refused");
    for _ in 0..4 {
        assert_eq!(choice(), Selection::Chosen("r01".into()));
    }
}

/// A refused file is reported once, not again on every reload (reading the
/// plugin files must not set off the next reload either), and the next good
/// file loads.
#[test]
fn a_refused_file_is_reported_once_and_the_next_good_one_loads() {
    let t =
        test_host(&[(SLOT_FILE, example("selector_round_robin"))], vec![(PluginKind::Selector, slot(SLOT_FILE, &[]))]);
    let _watcher = PluginWatcher::start(t.host.clone(), None, Duration::from_millis(20)).unwrap();
    std::fs::write(t.dir.path().join(SLOT_FILE), b"not a component").unwrap();
    assert!(wait_until(Duration::from_secs(5), || t.host.rejections() > 0).is_some(), "the bad file was noticed");
    // Many debounce periods: a reload set off by its own reads would refuse
    // the file again each time.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(t.host.rejections(), 1);
    assert_eq!(t.host.reload()[0], ReloadOutcome::Unchanged(PluginKind::Selector));
    assert_eq!(t.host.rejections(), 1);

    std::fs::write(t.dir.path().join(SLOT_FILE), example("selector_least_pending")).unwrap();
    let least_pending = sha256(&example("selector_least_pending"));
    let active = || t.host.active(PluginKind::Selector).map(|p| p.id.version_hash);
    assert!(wait_until(Duration::from_secs(5), || active().as_ref() == Some(&least_pending)).is_some());
}

/// Kubernetes updates a mounted ConfigMap the way the kubelet's atomic
/// writer does: the files are symlinks through `..data`, which is swapped
/// to a new timestamped folder by a rename. The plugin swaps with it.
#[test]
fn a_configmap_update_swaps_the_plugin_in_place() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path();
    let version = |name: &str, plugin: &str| {
        std::fs::create_dir(mount.join(name)).unwrap();
        std::fs::write(mount.join(name).join(SLOT_FILE), example(plugin)).unwrap();
    };
    version("..2026_11_24_12_00_00.1", "selector_round_robin");
    symlink("..2026_11_24_12_00_00.1", mount.join("..data")).unwrap();
    symlink(format!("..data/{SLOT_FILE}"), mount.join(SLOT_FILE)).unwrap();
    let config = plugins_config(mount, vec![(PluginKind::Selector, slot(SLOT_FILE, &[]))]);
    let (host, _) = PluginHost::new(&config, engine(None)).unwrap();
    let host = std::sync::Arc::new(host);
    let active = || host.active(PluginKind::Selector).map(|p| p.id.version_hash);
    assert_eq!(active(), Some(sha256(&example("selector_round_robin"))));
    let _watcher = PluginWatcher::start(host.clone(), None, Duration::from_millis(50)).unwrap();

    version("..2026_11_24_12_05_00.2", "selector_least_pending");
    symlink("..2026_11_24_12_05_00.2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(mount.join("..2026_11_24_12_00_00.1")).unwrap();

    let least_pending = sha256(&example("selector_least_pending"));
    let swapped = wait_until(Duration::from_secs(5), || active().as_ref() == Some(&least_pending));
    assert!(swapped.is_some(), "the ConfigMap update was not loaded");
    assert_eq!(host.rejections(), 0);
}
