//! Hostile plugins, built by the suite from host/tests/hostile: each is
//! refused at load or contained at run time with a clear, typed error, and
//! the previous plugin keeps serving.

mod support;

use support::*;
use switchyard::config::PluginSlot;
use switchyard::plugins::{DecidedBy, PluginError, PluginKind, ReloadOutcome, Selection};

const SLOT_FILE: &str = "selector.wasm";

/// A host whose selector slot serves round-robin from `selector.wasm`.
fn serving_round_robin() -> TestHost {
    let t =
        test_host(&[(SLOT_FILE, example("selector_round_robin"))], vec![(PluginKind::Selector, slot(SLOT_FILE, &[]))]);
    assert!(matches!(t.loaded[0], ReloadOutcome::Loaded { .. }), "{:?}", t.loaded[0]);
    t
}

fn still_serves_round_robin(t: &TestHost) {
    let active = t.host.active(PluginKind::Selector).expect("a selector is active");
    assert_eq!(active.id.version_hash, sha256(&example("selector_round_robin")));
    let decision = decide(t.host.select(&request(), &candidates(2)));
    assert_eq!(decision.plugin().map(|p| p.name.as_str()), Some("selector"));
    assert!(matches!(decision.outcome, Selection::Chosen(_)));
}

/// Swaps `bytes` (with the slot config `config`) into a host serving
/// round-robin; returns why it was refused, after checking round-robin
/// still serves.
fn refused(bytes: &[u8], config: &[(&str, &str)]) -> String {
    refused_in_slot(bytes, slot(SLOT_FILE, config))
}

/// Touching memory costs CPU (page faults), so a test of the memory cap
/// gives the deadline room: the cap, not the deadline, must stop the plugin.
fn memory_test_slot(file: &str, config: &[(&str, &str)]) -> PluginSlot {
    PluginSlot { timeout_ms: 100, memory_mib: 8, ..slot(file, config) }
}

fn refused_in_slot(bytes: &[u8], wanted: PluginSlot) -> String {
    let t = serving_round_robin();
    std::fs::write(t.dir.path().join(SLOT_FILE), bytes).unwrap();
    let settings = plugins_config(t.dir.path(), vec![(PluginKind::Selector, wanted)]);
    let outcome = t.host.apply(&settings).remove(0);
    let ReloadOutcome::Rejected { reason, file, .. } = outcome else { panic!("accepted: {outcome:?}") };
    assert!(file.ends_with(SLOT_FILE));
    assert_eq!(t.host.rejections(), 1);
    still_serves_round_robin(&t);
    reason
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline() {
    let reason = refused(&hostile_plugin("hostile_trickster"), &[("mode", "loop")]);
    assert_eq!(reason, "failed the smoke call (select): exceeded its CPU deadline of 10 ms");
}

#[test]
fn unbounded_memory_growth_hits_the_cap() {
    let reason =
        refused_in_slot(&hostile_plugin("hostile_trickster"), memory_test_slot(SLOT_FILE, &[("mode", "grow")]));
    assert!(reason.starts_with("failed the smoke call (select): exceeded its memory cap of 8388608 bytes"), "{reason}");
}

#[test]
fn a_panic_is_a_trap_that_says_why() {
    let reason = refused(&hostile_plugin("hostile_trickster"), &[("mode", "panic")]);
    assert!(reason.starts_with("failed the smoke call (select): trapped:"), "{reason}");
    assert!(reason.contains("hostile plugin panicked on purpose"), "{reason}");
}

#[test]
fn a_malformed_answer_is_refused() {
    let reason = refused(&hostile_plugin("hostile_trickster"), &[("mode", "bogus")]);
    assert_eq!(
        reason,
        "failed the smoke call (select): gave a malformed answer: chose relayer `no-such-relayer`, which is not a candidate"
    );
}

#[test]
fn a_non_wasm_file_is_refused() {
    assert_eq!(refused(b"#!/bin/sh\nrm -rf /\n", &[]), "not a WebAssembly file (no `\\0asm` header)");
    assert_eq!(refused(b"", &[]), "not a WebAssembly file (no `\\0asm` header)");
}

#[test]
fn a_truncated_component_is_refused() {
    let whole = example("selector_least_pending");
    let reason = refused(&whole[..whole.len() / 2], &[]);
    assert!(reason.starts_with("not a valid component:"), "{reason}");
}

#[test]
fn a_component_of_the_wrong_world_is_refused() {
    assert_eq!(refused(&example("fee_eip1559"), &[]), "is a fee plugin, but this slot takes a selector plugin");
    let reason = refused(&hostile_plugin("hostile_no_world"), &[]);
    assert!(reason.starts_with("exports no switchyard:plugin interface"), "{reason}");
}

#[test]
fn a_component_importing_sockets_is_refused() {
    let reason = refused(&hostile_plugin("hostile_sockets"), &[]);
    assert!(reason.starts_with("imports `wasi:sockets/"), "{reason}");
    assert!(reason.ends_with("which plugins are never granted (plugins get no network access)"), "{reason}");
}

#[test]
fn a_component_that_could_sleep_in_the_host_is_refused() {
    let reason = refused(&hostile_plugin("hostile_sleeper"), &[]);
    assert!(reason.starts_with("imports `wasi:clocks/monotonic-clock@"), "{reason}");
}

#[test]
fn a_component_using_the_filesystem_finds_nothing_to_open() {
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("relayer.key");
    std::fs::write(&secret, "0xdeadbeef-private-key").unwrap();
    let reason = refused(&hostile_plugin("hostile_filesystem"), &[("path", secret.to_str().unwrap())]);
    assert!(reason.contains("trapped:") && reason.contains("cannot read"), "{reason}");
    assert!(!reason.contains("deadbeef"), "the plugin read the secret: {reason}");
}

#[test]
fn misbehaviour_at_run_time_falls_back_per_call() {
    let file = "trickster.wasm";
    let t = test_host(
        &[(file, hostile_plugin("hostile_trickster"))],
        vec![(PluginKind::Selector, memory_test_slot(file, &[]))],
    );
    assert!(matches!(t.loaded[0], ReloadOutcome::Loaded { .. }), "a well-behaved trickster loads: {:?}", t.loaded[0]);
    let relayers = candidates(3);

    let failure = |mode: &str| {
        let decision = decide(t.host.select(&with_hint("mode", mode), &relayers));
        assert!(matches!(decision.outcome, Selection::Chosen(_)), "the default still chose: {:?}", decision.outcome);
        match decision.decided_by {
            DecidedBy::Fallback { plugin: Some(id), reason } => {
                assert_eq!(id.name, "trickster");
                reason
            }
            other => panic!("{mode}: not contained: {other:?}"),
        }
    };
    assert_eq!(failure("loop"), PluginError::Timeout { timeout_ms: 100 });
    assert!(matches!(failure("grow"), PluginError::MemoryLimit { cap: 8_388_608, .. }));
    assert!(matches!(failure("panic"), PluginError::Trap(m) if m.contains("hostile plugin panicked on purpose")));
    assert!(matches!(failure("bogus"), PluginError::MalformedAnswer(m) if m.contains("no-such-relayer")));

    let flood = decide(t.host.select(&with_hint("mode", "log-flood"), &relayers));
    assert!(flood.plugin().is_some(), "a log flood is capped, not fatal: {:?}", flood.decided_by);
    let after = decide(t.host.select(&request(), &relayers));
    assert_eq!(after.outcome, Selection::Chosen("r00".into()), "the plugin serves on after each failure");
    assert!(after.plugin().is_some());
}

#[test]
fn a_spinning_plugin_yields_its_thread_to_other_tasks() {
    let file = "trickster.wasm";
    let t = test_host(&[(file, hostile_plugin("hostile_trickster"))], vec![(PluginKind::Selector, slot(file, &[]))]);
    let relayers = candidates(3);
    // One thread: had the plugin held it until its deadline, the task
    // spawned before the call could not run before the call returned.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let other_task_ran = runtime.block_on(async {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let other = tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        let decision = t.host.select(&with_hint("mode", "loop"), &relayers).await;
        assert!(matches!(decision.decided_by, DecidedBy::Fallback { reason: PluginError::Timeout { .. }, .. }));
        let ran_during_the_call = ran.load(std::sync::atomic::Ordering::SeqCst);
        other.await.unwrap();
        ran_during_the_call
    });
    assert!(other_task_ran, "the plugin held the runtime's only thread for its whole deadline");
}

/// Captures what the host logs while `f` runs on this thread.
fn captured_logs(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn plugin_logs_land_in_tracing_with_the_plugin_name_and_are_capped() {
    let file = "chatty.wasm";
    let t = test_host(&[(file, hostile_plugin("hostile_trickster"))], vec![(PluginKind::Selector, slot(file, &[]))]);
    let logs = captured_logs(|| {
        let decision = decide(t.host.select(&with_hint("mode", "log-flood"), &candidates(2)));
        assert!(decision.plugin().is_some(), "{:?}", decision.decided_by);
    });
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("switchyard::plugin")).collect();
    assert_eq!(lines.len(), 64, "the plugin logged 1000 messages; 64 pass per call");
    assert!(
        lines[0].contains("INFO") && lines[0].contains("plugin=\"chatty\"") && lines[0].contains("flood 0 xxx"),
        "{}",
        lines[0]
    );
    assert!(lines.iter().all(|l| l.len() < 2048 + 200), "messages are truncated to 2 KiB");
}

#[test]
fn a_rejection_is_logged_with_the_file_and_the_reason() {
    let t = serving_round_robin();
    std::fs::write(t.dir.path().join(SLOT_FILE), b"not a component").unwrap();
    let logs = captured_logs(|| {
        t.host.reload();
    });
    let line =
        logs.lines().find(|l| l.contains("plugin rejected")).unwrap_or_else(|| panic!("no rejection logged: {logs}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&t.dir.path().join(SLOT_FILE).display().to_string()), "names the file: {line}");
    assert!(line.contains("not a WebAssembly file"), "names the reason: {line}");
    assert!(line.contains("selector@"), "names the version that keeps serving: {line}");
    still_serves_round_robin(&t);
}
