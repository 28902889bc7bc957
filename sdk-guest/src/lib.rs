//! Write Switchyard routing plugins in plain Rust.
//!
//! A plugin is a crate built to `wasm32-wasip2` that implements one of three
//! traits — [`selector::Selector`], [`policy::Policy`] or [`fee::Fee`] — and
//! exports it with one line:
//!
//! ```ignore
//! use switchyard_sdk::selector::{Candidate, Selection, Selector};
//! use switchyard_sdk::{Config, Request};
//!
//! pub struct First;
//! impl Selector for First {
//!     fn select(_: &Config, _: &Request, candidates: &[Candidate], _: u64) -> Selection {
//!         candidates.first().map_or(Selection::refused("no candidate"), Selection::chosen)
//!     }
//! }
//! switchyard_sdk::export_selector!(First);
//! ```
//!
//! Amounts are exact [`U256`]s, addresses are [`Address`]es and the plugin's
//! configuration is a typed [`Config`]. The [`testing`] module runs a plugin's
//! decisions through the same export glue the host calls, natively under
//! `cargo test` and inside the guest under `cargo test --target wasm32-wasip2`.

pub mod bindings;
mod config;
pub mod fee;
pub mod log;
pub mod policy;
pub mod selector;
pub mod testing;
mod types;

pub use config::{Config, ConfigError};
pub use ruint::aliases::U256;
pub use types::{Address, Labels, Request, Speed};

/// One gwei in wei.
pub const GWEI: U256 = U256::from_limbs([1_000_000_000, 0, 0, 0]);

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
