//! Switchyard: a transaction relay whose routing brain is WebAssembly.
//!
//! One module per seam. This crate is both the `switchyard` binary and the
//! library its tests and benchmarks use.

pub mod access;
pub mod api;
pub mod chain;
pub mod cli;
pub mod config;
pub mod pipeline;
pub mod plugins;
pub mod queue;
pub mod relayers;
pub mod serve;
pub mod store;
pub mod telemetry;
