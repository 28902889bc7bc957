//! Generated bindings, one module per plugin world.
//!
//! The shared `types` and `log` interfaces are generated once (in
//! `selector_world`) and reused by the other worlds, so one Rust type stands
//! for each WIT type. A plugin only links the world it exports: the `export_*`
//! macros of this crate pull in that world's exports and nothing else.

#![allow(missing_docs, unreachable_pub, clippy::all, missing_debug_implementations)]

pub mod selector_world {
    wit_bindgen::generate!({
        world: "selector-plugin",
        path: "../wit/since_v0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_selector_world",
        default_bindings_module: "switchyard_sdk::bindings::selector_world",
    });
}

pub mod policy_world {
    wit_bindgen::generate!({
        world: "policy-plugin",
        path: "../wit/since_v0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "switchyard_sdk::bindings::policy_world",
        with: {
            "switchyard:plugin/types@0.1.0": crate::bindings::selector_world::switchyard::plugin::types,
            "switchyard:plugin/log@0.1.0": crate::bindings::selector_world::switchyard::plugin::log,
        },
    });
}

pub mod fee_world {
    wit_bindgen::generate!({
        world: "fee-plugin",
        path: "../wit/since_v0.1.0",
        pub_export_macro: true,
        export_macro_name: "__export_fee_world",
        default_bindings_module: "switchyard_sdk::bindings::fee_world",
        with: {
            "switchyard:plugin/types@0.1.0": crate::bindings::selector_world::switchyard::plugin::types,
            "switchyard:plugin/log@0.1.0": crate::bindings::selector_world::switchyard::plugin::log,
        },
    });
}

pub use selector_world::switchyard::plugin::{log, types};
