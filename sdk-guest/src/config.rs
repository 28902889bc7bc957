use std::fmt;
use std::str::FromStr;

use crate::{Address, GWEI, U256};

/// A plugin's configuration: the string map the operator wrote in the host's
/// config under `[plugins.<kind>.config]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config(Vec<(String, String)>);

/// A configuration value that is missing or does not parse. Its message
/// names the key, so the host can show the operator what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config key `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

impl Config {
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Config(entries)
    }

    /// The raw pairs, as the host passes them.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.0.clone()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim())
    }

    pub fn require(&self, key: &str) -> Result<&str, ConfigError> {
        self.get(key).ok_or_else(|| error(key, "is required"))
    }

    /// Parses the value with `FromStr`; `Ok(None)` when the key is absent.
    pub fn parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.get(key).map(|v| v.parse::<T>().map_err(|e| error(key, format!("`{v}`: {e}")))).transpose()
    }

    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// An exact amount in wei: a decimal integer, optionally followed by the
    /// unit `wei`, `gwei` or `ether` (`"30 gwei"`). Fractions are refused.
    pub fn amount(&self, key: &str) -> Result<Option<U256>, ConfigError> {
        self.get(key).map(|v| parse_amount(v).map_err(|m| error(key, m))).transpose()
    }

    /// A comma-separated list; empty items are dropped.
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.get(key).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
    }

    pub fn addresses(&self, key: &str) -> Result<Vec<Address>, ConfigError> {
        self.list(key).into_iter().map(|a| a.parse().map_err(|m| error(key, m))).collect()
    }

    /// A comma-separated list of `name=value` pairs (`"a=3, b=1"`).
    pub fn pairs<T: FromStr>(&self, key: &str) -> Result<Vec<(String, T)>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.list(key)
            .into_iter()
            .map(|item| {
                let (name, value) =
                    item.split_once('=').ok_or_else(|| error(key, format!("`{item}` is not `name=value`")))?;
                let value = value.trim().parse().map_err(|e| error(key, format!("`{item}`: {e}")))?;
                Ok((name.trim().to_string(), value))
            })
            .collect()
    }
}

fn error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), message: message.into() }
}

fn parse_amount(v: &str) -> Result<U256, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let unit_wei = match unit.trim() {
        "" | "wei" => U256::from(1u64),
        "gwei" => GWEI,
        "ether" => U256::from(10u64).pow(U256::from(18u64)),
        other => return Err(format!("`{v}`: unknown unit `{other}` (use wei, gwei or ether)")),
    };
    if digits.is_empty() {
        return Err(format!("`{v}` is not a whole number of wei, gwei or ether"));
    }
    let n = U256::from_str_radix(digits, 10).map_err(|e| format!("`{v}`: {e}"))?;
    n.checked_mul(unit_wei).ok_or_else(|| format!("`{v}` does not fit in 256 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn amounts_accept_units_and_refuse_fractions() {
        let c = config(&[("a", "30 gwei"), ("b", "12"), ("c", "1.5 gwei"), ("d", "2ether")]);
        assert_eq!(c.amount("a").unwrap(), Some(U256::from(30_000_000_000u64)));
        assert_eq!(c.amount("b").unwrap(), Some(U256::from(12u64)));
        assert_eq!(c.amount("d").unwrap(), Some(U256::from(2_000_000_000_000_000_000u64)));
        let err = c.amount("c").unwrap_err();
        assert_eq!(err.key, "c");
        assert!(err.message.contains("unknown unit"), "{err}");
        assert_eq!(c.amount("missing").unwrap(), None);
    }

    #[test]
    fn pairs_name_the_bad_item() {
        let c = config(&[("w", "a=3, b=x")]);
        let err = c.pairs::<u32>("w").unwrap_err();
        assert!(err.to_string().starts_with("config key `w`: `b=x`"), "{err}");
    }
}
