//! Runs a plugin crate's `wasm32-wasip2` test binary (a `wasi:cli/command`
//! component) with the host imports a plugin gets, so guest unit tests run
//! against the real `log` import. Unlike a plugin call it may print, read
//! its arguments and run as long as the tests take.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::bindings::sync::Command;

use super::sandbox::{self, Limits};
use super::wit;

/// Returns the test binary's exit code.
pub fn run_test_binary(path: &Path, args: &[OsString]) -> anyhow::Result<u8> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, path)
        .map_err(|e| anyhow::anyhow!("cannot load test binary {}: {e:#}", path.display()))?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wit::add_to_linker(&mut linker)?;

    let name = super::plugin_name(path);
    let mut argv = vec![name.clone()];
    argv.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
    let wasi = WasiCtx::builder().inherit_stdout().inherit_stderr().args(&argv).build();
    let limits = Limits { timeout: std::time::Duration::MAX, memory_bytes: 1 << 32 };
    let mut store = sandbox::store_with(&engine, Some(wasi), &Arc::from(name), &limits);

    let command = Command::instantiate(&mut store, &component, &linker)?;
    match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(error) => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => Ok(u8::try_from(exit.0).unwrap_or(1)),
            None => {
                eprintln!("test binary trapped: {error:#}");
                Ok(101)
            }
        },
    }
}
