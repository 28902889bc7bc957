//! `switchyard plugin check`: the operator's view of what hot reload accepts.

mod support;

use std::process::{Command, Output};

use support::*;

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard")).args(["plugin", "check"]).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_prints_kind_wit_version_and_sha256() {
    let path = examples().join("selector_round_robin.wasm");
    let out = check(&[path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("kind:        selector\n"), "{stdout}");
    assert!(stdout.contains("wit:         switchyard:plugin@0.1.0\n"), "{stdout}");
    let sha = sha256(&example("selector_round_robin"));
    assert!(stdout.contains(&format!("sha256:      {sha}\n")), "{stdout}");
    assert!(stdout.contains("smoke test:  passed"), "{stdout}");
}

#[test]
fn check_refuses_what_hot_reload_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "not wasm").unwrap();
    let fee = examples().join("fee_eip1559.wasm");
    let sockets = hostile().join("hostile_sockets.wasm");
    let cases: [(&[&str], &str); 4] = [
        (&[junk.to_str().unwrap()], "not a WebAssembly file"),
        (&[fee.to_str().unwrap(), "--kind", "selector"], "is a fee plugin, but this slot takes a selector plugin"),
        (&[sockets.to_str().unwrap()], "plugins get no network access"),
        (&["/no/such/plugin.wasm"], "cannot read /no/such/plugin.wasm"),
    ];
    for (args, reason) in cases {
        let out = check(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("refused:") && stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn check_passes_plugin_config() {
    let policy = examples().join("policy_allowlist.wasm");
    let out = check(&[policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("config key `contracts`: is required"), "{}", text(&out.stderr));
    let out = check(&[policy.to_str().unwrap(), "--config", "contracts=*", "--config", "daily_limit=5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
