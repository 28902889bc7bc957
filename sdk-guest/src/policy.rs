//! Policy plugins decide whether a request is accepted, at submission.

use std::marker::PhantomData;

use crate::bindings::policy_world::exports::switchyard::plugin::policy as wit;
use crate::{Config, Request, Speed};

/// Facts the host counts for the request's API key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests this API key had accepted since 00:00 UTC, not counting this
    /// one.
    pub requests_today: u64,
}

/// Changes applied to an allowed request; `None` keeps the caller's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// At most the request's own gas limit.
    pub gas_limit: Option<u64>,
    pub speed: Option<Speed>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The reason is shown to the client.
    Deny(String),
    AllowWithChanges(Changes),
}

impl Verdict {
    pub fn deny(reason: impl Into<String>) -> Self {
        Verdict::Deny(reason.into())
    }
}

/// Implement this and export it with [`export_policy!`](crate::export_policy).
pub trait Policy {
    /// Rejects a configuration the plugin cannot work with.
    fn check_config(_config: &Config) -> Result<(), String> {
        Ok(())
    }

    fn evaluate(config: &Config, request: &Request, usage: Usage) -> Verdict;
}

#[doc(hidden)]
#[derive(Debug)]
pub struct Export<T>(PhantomData<T>);

impl<T: Policy> wit::Guest for Export<T> {
    fn check_config(config: Vec<(String, String)>) -> Result<(), String> {
        crate::log::report_panics();
        T::check_config(&Config::new(config))
    }

    fn evaluate(
        config: Vec<(String, String)>,
        request: crate::bindings::types::TxRequest,
        usage: wit::Usage,
    ) -> wit::Verdict {
        crate::log::report_panics();
        let usage = Usage { requests_today: usage.requests_today };
        match T::evaluate(&Config::new(config), &request.into(), usage) {
            Verdict::Allow => wit::Verdict::Allow,
            Verdict::Deny(reason) => wit::Verdict::Deny(reason),
            Verdict::AllowWithChanges(c) => {
                wit::Verdict::AllowWithChanges(wit::Changes { gas_limit: c.gas_limit, speed: c.speed.map(Into::into) })
            }
        }
    }
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        match v {
            wit::Verdict::Allow => Verdict::Allow,
            wit::Verdict::Deny(reason) => Verdict::Deny(reason),
            wit::Verdict::AllowWithChanges(c) => {
                Verdict::AllowWithChanges(Changes { gas_limit: c.gas_limit, speed: c.speed.map(Into::into) })
            }
        }
    }
}

/// Exports a [`Policy`] as the plugin's `switchyard:plugin/policy`.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        // Natively the crate is only linked for unit tests, and a native
        // cdylib cannot carry component export names.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SwitchyardPolicy = $crate::policy::Export<$policy>;
            $crate::bindings::policy_world::__export_policy_world!(__SwitchyardPolicy with_types_in $crate::bindings::policy_world);
        };
    };
}
