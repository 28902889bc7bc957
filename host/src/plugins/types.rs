//! What the pipeline hands to plugins and gets back, independent of the WIT
//! version a plugin was built against. Each `wit::since_*` module converts
//! these to and from its own generated types.

use std::fmt;

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};

/// The three decisions Switchyard delegates to plugins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Selector,
    Policy,
    Fee,
}

impl PluginKind {
    pub const ALL: [PluginKind; 3] = [PluginKind::Selector, PluginKind::Policy, PluginKind::Fee];

    /// The WIT interface a plugin of this kind exports.
    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Selector => "selector",
            PluginKind::Policy => "policy",
            PluginKind::Fee => "fee",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

impl std::str::FromStr for PluginKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.interface() == s)
            .ok_or_else(|| format!("unknown plugin kind `{s}` (expected selector, policy or fee)"))
    }
}

/// Which plugin build made a decision: recorded on every transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PluginId {
    /// The plugin file's name without `.wasm`.
    pub name: String,
    /// sha256 of the component bytes, lowercase hex.
    pub version_hash: String,
    /// The `switchyard:plugin` WIT version it was built against.
    pub wit_version: String,
}

impl PluginId {
    /// The hash's first 12 hex digits: the version shown in logs and metrics.
    pub fn short_hash(&self) -> &str {
        &self.version_hash[..12.min(self.version_hash.len())]
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.short_hash())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    SafeLow,
    #[default]
    Average,
    Fast,
    Fastest,
}

impl Speed {
    pub const ALL: [Speed; 4] = [Speed::SafeLow, Speed::Average, Speed::Fast, Speed::Fastest];

    /// The name the API and the database use (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Speed::SafeLow => "safe_low",
            Speed::Average => "average",
            Speed::Fast => "fast",
            Speed::Fastest => "fastest",
        }
    }
}

impl std::str::FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Speed::ALL.into_iter().find(|speed| speed.as_str() == s).ok_or_else(|| format!("unknown speed `{s}`"))
    }
}

/// A relay request, as plugins see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    pub id: String,
    pub chain_id: u64,
    /// `None` deploys a contract.
    pub to: Option<Address>,
    pub value: U256,
    pub data: Vec<u8>,
    pub gas_limit: Option<u64>,
    pub speed: Speed,
    pub api_key_id: String,
    pub hints: Vec<(String, String)>,
}

/// A relayer offered to the selector, with live stats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub address: Address,
    pub weight: u32,
    pub labels: Vec<(String, String)>,
    pub pending_count: u32,
    pub healthy: bool,
    pub balance: U256,
    pub success_rate_bps: u32,
    pub latency_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    Chosen(String),
    Refused(String),
}

/// Facts the host counts for the request's API key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests_today: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub gas_limit: Option<u64>,
    pub speed: Option<Speed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny(String),
    AllowWithChanges(Changes),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFees {
    pub max_fee: U256,
    pub priority_fee: U256,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeeMarket {
    pub base_fee: U256,
    /// `(percentile, priority fee)`, ascending by percentile.
    pub priority_fees: Vec<(u8, U256)>,
    pub max_fee_cap: U256,
    pub previous: Option<AttemptFees>,
}

impl FeeMarket {
    /// The priority fee at the first reported percentile at or above
    /// `percentile`, else the highest reported one.
    pub fn priority_fee_at(&self, percentile: u8) -> Option<U256> {
        self.priority_fees.iter().find(|(p, _)| *p >= percentile).or(self.priority_fees.last()).map(|(_, fee)| *fee)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeQuote {
    pub max_fee: U256,
    pub priority_fee: U256,
    pub gas_limit_factor_bps: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeDecision {
    Quote(FeeQuote),
    CannotBump(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_names_are_the_serde_names() {
        for speed in Speed::ALL {
            assert_eq!(serde_json::to_string(&speed).unwrap(), format!("\"{}\"", speed.as_str()));
            assert_eq!(speed.as_str().parse::<Speed>(), Ok(speed));
        }
        assert!("turbo".parse::<Speed>().is_err());
    }
}
