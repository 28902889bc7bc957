//! The `switchyard` subcommands an operator and a plugin author run:
//! `plugin check|inspect|new|test|build`, `config check`, `relayer keys`,
//! `health`, `migrate`.

mod support;

use std::process::{Command, Output};

use support::*;

fn switchyard(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command.args(args).env_remove("RUST_LOG");
    command
}

fn check(args: &[&str]) -> Output {
    switchyard(&["plugin", "check"]).args(args).output().unwrap()
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

#[test]
fn inspect_shows_world_imports_exports_and_hash_without_running() {
    let path = examples().join("fee_eip1559.wasm");
    let out = switchyard(&["plugin", "inspect", path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("world:     switchyard:plugin/fee-plugin@0.1.0\n"), "{stdout}");
    assert!(stdout.contains(&format!("sha256:    {}\n", sha256(&example("fee_eip1559")))), "{stdout}");
    assert!(stdout.contains("export:    switchyard:plugin/fee@0.1.0\n"), "{stdout}");
    assert!(stdout.contains("import:    switchyard:plugin/log@0.1.0\n"), "{stdout}");

    // A hostile one is described, with the import the host would refuse.
    let sockets = hostile().join("hostile_sockets.wasm");
    let out = switchyard(&["plugin", "inspect", sockets.to_str().unwrap()]).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("import:    wasi:sockets/")
                && l.ends_with("(refused: plugins get no network access)")),
        "{stdout}"
    );

    let out = switchyard(&["plugin", "inspect", "/no/such.wasm"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /no/such.wasm"));
}

/// Each kind's scaffold passes its own tests natively and in the sandbox,
/// builds to a component the host accepts as that kind, and refuses to
/// overwrite.
#[test]
fn scaffolded_plugins_pass_their_tests_and_build_to_components_the_host_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = support::repo_root().join("sdk-guest");
    // The three scaffolds share one target folder: the SDK compiles once.
    let target = dir.path().join("target");
    for (name, kind, tests) in [("my_selector", "selector", 3), ("my_policy", "policy", 3), ("my_fee", "fee", 2)] {
        let new = switchyard(&["plugin", "new", name, "--kind", kind, "--sdk", sdk.to_str().unwrap()])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(new.status.success(), "{}", text(&new.stderr));
        let crate_dir = dir.path().join(name);

        let test = switchyard(&["plugin", "test", crate_dir.to_str().unwrap()])
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&test.stdout), text(&test.stderr));
        assert!(test.status.success(), "{kind}: plugin test failed:\n{stdout}\n{stderr}");
        assert!(stderr.contains("[2/2] plugin tests, wasm32-wasip2, in the sandbox"), "{stderr}");
        // The template's tests pass natively and in the sandbox (doc tests
        // only run natively, and there are none).
        let passed = format!("test result: ok. {tests} passed; 0 failed");
        assert_eq!(stdout.matches(&passed).count(), 2, "{kind}: expected `{passed}` twice:\n{stdout}");

        let build = switchyard(&["plugin", "build", crate_dir.to_str().unwrap()]).output().unwrap();
        assert!(build.status.success(), "{kind}: plugin build failed:\n{}", text(&build.stderr));
        let component = crate_dir.join(format!("{name}.wasm"));
        let out = check(&[component.to_str().unwrap(), "--kind", kind]);
        assert!(out.status.success(), "{kind}: the host refuses the scaffold: {}", text(&out.stderr));

        let again = switchyard(&["plugin", "new", name, "--kind", kind, "--sdk", sdk.to_str().unwrap()])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(again.status.code(), Some(1));
        assert!(text(&again.stderr).contains("never overwrites"), "{}", text(&again.stderr));
    }
    let bad = switchyard(&["plugin", "new", "Bad Name", "--kind", "fee", "--sdk", sdk.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(text(&bad.stderr).contains("is not a plugin name"), "{}", text(&bad.stderr));
}

#[test]
fn config_check_names_the_wrong_key_and_never_prints_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.toml");
    std::fs::write(&file, "[network]\nconfirmations = 0\n").unwrap();
    let out = switchyard(&["config", "check", "--config", file.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("config key `network.confirmations`"), "{}", text(&out.stderr));

    std::fs::write(&file, "queue_url = \"amqp://guest:hunter2@127.0.0.1:5672/%2f\"\n").unwrap();
    let out = switchyard(&["config", "check", "--config", file.to_str().unwrap()])
        .env("SWITCHYARD_DATABASE_URL", "postgres://sy:s3cr3t@db:5432/sy")
        .env("SWITCHYARD_RPC_URL", "https://rpc.example/v2/pr0v1d3r-k3y")
        .env("SWITCHYARD_MASTER_KEY", "an-api-key-of-32-characters-0000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout) + &text(&out.stderr);
    assert!(shown.contains("is valid") && shown.contains("postgres://sy:***@db:5432/sy"), "{shown}");
    for secret in ["hunter2", "s3cr3t", "pr0v1d3r-k3y", "an-api-key-of-32"] {
        assert!(!shown.contains(secret), "config check printed {secret}: {shown}");
    }
}

#[test]
fn relayer_keys_are_created_imported_and_listed_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let keys_arg = keys.to_str().unwrap();
    let password = "correct horse battery";
    // anvil's first dev key.
    let dev_key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let run = |args: &[&str]| switchyard(args).env("KEY_PASSWORD", password).env("DEV_KEY", dev_key).output().unwrap();

    let new = run(&["relayer", "keys", "new", "--dir", keys_arg, "--name", "hot-1", "--password-env", "KEY_PASSWORD"]);
    assert!(new.status.success(), "{}", text(&new.stderr));
    let stdout = text(&new.stdout);
    assert!(stdout.contains("password_env = \"KEY_PASSWORD\""), "{stdout}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&keys), mode(&keys.join("hot-1.json"))), (0o700, 0o600), "keystores are the owner's alone");
    let keystore = std::fs::read_to_string(keys.join("hot-1.json")).unwrap();
    assert!(keystore.contains("scrypt") && !keystore.contains(&dev_key[2..]), "{keystore}");

    let import = run(&[
        "relayer",
        "keys",
        "import",
        "--dir",
        keys_arg,
        "--name",
        "dev-0",
        "--key-env",
        "DEV_KEY",
        "--password-env",
        "KEY_PASSWORD",
    ]);
    assert!(import.status.success(), "{}", text(&import.stderr));
    assert!(text(&import.stdout).contains("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"), "{}", text(&import.stdout));
    assert!(!(text(&import.stdout) + &text(&import.stderr)).contains(&dev_key[2..]), "the key was echoed");

    let list = run(&["relayer", "keys", "list", "--dir", keys_arg, "--password-env", "KEY_PASSWORD"]);
    let stdout = text(&list.stdout);
    assert!(stdout.contains("dev-0.json  0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"), "{stdout}");
    assert!(stdout.contains("hot-1.json  0x"), "{stdout}");

    // The keystore works as a relayer key source.
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "[[relayers]]\nid = \"dev-0\"\nkey = {{ keystore = \"{}\", password_env = \"KEY_PASSWORD\" }}\n",
            keys.join("dev-0.json").display()
        ),
    )
    .unwrap();
    assert!(run(&["config", "check", "--config", config.to_str().unwrap()]).status.success());

    let again =
        run(&["relayer", "keys", "new", "--dir", keys_arg, "--name", "hot-1", "--password-env", "KEY_PASSWORD"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("never overwritten"), "{}", text(&again.stderr));
    let weak = switchyard(&["relayer", "keys", "new", "--dir", keys_arg, "--name", "weak", "--password-env", "WEAK"])
        .env("WEAK", "short")
        .output()
        .unwrap();
    assert!(text(&weak.stderr).contains("at least 8 characters"), "{}", text(&weak.stderr));
}

#[test]
fn health_probe_exits_by_the_answer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/health", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for answer in ["200 OK", "503 Service Unavailable"] {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).unwrap();
            write!(stream, "HTTP/1.1 {answer}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK").unwrap();
        }
    });
    assert!(switchyard(&["health", "--url", &url]).status().unwrap().success());
    let out = switchyard(&["health", "--url", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("503"), "{}", text(&out.stderr));
    server.join().unwrap();
    // Nothing listening.
    let out = switchyard(&["health", "--url", &url, "--timeout-ms", "500"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn openapi_prints_the_document_the_server_serves() {
    let output = switchyard(&["openapi"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, serde_json::to_value(switchyard::api::openapi()).unwrap());
}

#[test]
fn migrate_lists_what_it_will_apply_then_what_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let migrate = || switchyard(&["migrate"]).env("SWITCHYARD_DATA_DIR", data).output().unwrap();
    let migrations: Vec<String> = std::fs::read_dir(repo_root().join("migrations/sqlite"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().split('_').next().unwrap().to_string())
        .collect();

    let first = migrate();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(stdout.contains(&format!("  {} to apply:\n", migrations.len())), "{stdout}");
    for version in &migrations {
        let (pending, applied) = (format!("    {version} "), format!("  applied {version} "));
        let (Some(listed), Some(done)) = (stdout.find(&pending), stdout.find(&applied)) else {
            panic!("{version} is not listed then applied:\n{stdout}");
        };
        assert!(listed < done, "{stdout}");
    }
    assert!(stdout.ends_with("the SQLite schema is up to date\n"), "{stdout}");

    let again = text(&migrate().stdout);
    assert!(again.contains("  0 to apply\n") && !again.contains("applied"), "{again}");
}
