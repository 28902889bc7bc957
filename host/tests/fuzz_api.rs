//! schemathesis (PyPI; scripts/python-tool.sh schemathesis installs it)
//! fuzzes every operation of the OpenAPI document a running `switchyard
//! serve` publishes, with the master key: no answer may be a server error,
//! and the server must still be up and serving afterwards.

mod support;

use std::process::Command;

use support::relay::{API_KEY, Anvil, STANDARD_PLUGINS, Server, skip, write_config};

/// Test cases per operation; `SWITCHYARD_FUZZ_EXAMPLES` raises it for a
/// longer run (the suite's short run fixes the seed, so it is repeatable).
fn examples() -> String {
    std::env::var("SWITCHYARD_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_any_operation() {
    let st = support::repo_root().join("tools/schemathesis/venv/bin/st");
    if !st.is_file() {
        return skip("schemathesis is not installed (scripts/python-tool.sh schemathesis installs it)");
    }
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = write_config(dir.path(), &anvil, 2, 2, STANDARD_PLUGINS);
    let (mut server, logs) = Server::start_logged(&config, &env);

    let output = Command::new(&st)
        .current_dir(dir.path())
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", server.url))
        .args(["--checks", "not_a_server_error"])
        // An endless stream: each case would wait for its timeout.
        .args(["--exclude-path", "/api/v1/events"])
        .args(["--header", &format!("Authorization: Bearer {API_KEY}")])
        // One worker: CPython 3.11's parser is not thread-safe under
        // hypothesis' lambda descriptions ("AST constructor recursion depth
        // mismatch"), an error of the tool, not of the API.
        .args(["--max-examples", &examples(), "--seed", "20261201", "--workers", "1"])
        .args(["--request-timeout", "20", "--generation-database", "none", "--no-color"])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed ({}):\n{report}\n{}\nserver log (last 50 lines):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        logs.lock().unwrap().iter().rev().take(50).rev().cloned().collect::<Vec<_>>().join("\n")
    );
    // The summary counts the operations it tested: a run that tested
    // nothing (an unreadable document, every operation skipped) is no proof.
    eprintln!("{report}");
    let tested = report
        .lines()
        .skip_while(|l| l.trim() != "API Operations:")
        .find_map(|l| l.trim().strip_prefix("Tested:")?.trim().parse::<u32>().ok());
    assert!(tested.is_some_and(|n| n >= 30), "schemathesis tested too few operations ({tested:?}):\n{report}");

    assert!(server.running(), "the server died under fuzzing");
    let (status, health) = server.get("/api/v1/health/detailed").await;
    assert_eq!(status, 200, "{health}");
    assert!(server.stop().success(), "SIGTERM drains and exits 0 after fuzzing");
}
