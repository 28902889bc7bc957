//! Admits only calls to allowlisted contracts and functions, caps the value
//! of each request and the number of requests per API key per day, and caps
//! the gas limit.
//!
//! Config (every key optional except `contracts`):
//! - `contracts`: comma-separated addresses a request may call, or `*`;
//! - `functions`: comma-separated 4-byte selectors (`0xa9059cbb`) calldata
//!   may start with; absent, any function of an allowed contract;
//! - `allow_deploy`: `true` to admit contract creation (default `false`);
//! - `max_value`: the most a request may send, e.g. `"1 ether"`;
//! - `daily_limit`: requests per API key per UTC day;
//! - `max_gas_limit`: larger gas limits are lowered to this.

use switchyard_sdk::policy::{Changes, Policy, Usage, Verdict};
use switchyard_sdk::{Address, Config, Request, U256};

pub struct Allowlist;

struct Rules {
    /// `None` admits any contract.
    contracts: Option<Vec<Address>>,
    functions: Option<Vec<[u8; 4]>>,
    allow_deploy: bool,
    max_value: Option<U256>,
    daily_limit: Option<u64>,
    max_gas_limit: Option<u64>,
}

fn parse_selector(s: &str) -> Result<[u8; 4], String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    let mut out = [0u8; 4];
    hex_decode(digits, &mut out)
        .ok_or_else(|| format!("config key `functions`: `{s}` is not a 4-byte selector like 0xa9059cbb"))?;
    Ok(out)
}

fn hex_decode(digits: &str, out: &mut [u8]) -> Option<()> {
    if digits.len() != out.len() * 2 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

impl Rules {
    fn from_config(config: &Config) -> Result<Self, String> {
        let contracts = match config.require("contracts")? {
            "*" => None,
            _ => Some(config.addresses("contracts")?),
        };
        let functions = config
            .get("functions")
            .map(|_| config.list("functions").into_iter().map(parse_selector).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        Ok(Rules {
            contracts,
            functions,
            allow_deploy: config.parse_or("allow_deploy", false)?,
            max_value: config.amount("max_value")?,
            daily_limit: config.parse("daily_limit")?,
            max_gas_limit: config.parse("max_gas_limit")?,
        })
    }

    fn evaluate(&self, request: &Request, usage: Usage) -> Verdict {
        match request.to {
            None if !self.allow_deploy => return Verdict::deny("contract deployment is not allowed"),
            None => {}
            Some(to) => {
                if self.contracts.as_ref().is_some_and(|allowed| !allowed.contains(&to)) {
                    return Verdict::deny(format!("contract {to} is not on the allowlist"));
                }
                if let Some(functions) = &self.functions {
                    if !request.data.is_empty() {
                        let Some(selector) = request.function_selector() else {
                            return Verdict::deny("calldata is shorter than a 4-byte function selector");
                        };
                        if !functions.contains(&selector) {
                            let hex: String = selector.iter().map(|b| format!("{b:02x}")).collect();
                            return Verdict::deny(format!("function 0x{hex} is not on the allowlist"));
                        }
                    }
                }
            }
        }
        if let Some(max) = self.max_value {
            if request.value > max {
                return Verdict::deny(format!("value {} wei is above the cap of {max} wei", request.value));
            }
        }
        if let Some(limit) = self.daily_limit {
            if usage.requests_today >= limit {
                return Verdict::deny(format!("this API key has used its {limit} requests for today"));
            }
        }
        match (self.max_gas_limit, request.gas_limit) {
            (Some(max), Some(asked)) if asked > max => {
                Verdict::AllowWithChanges(Changes { gas_limit: Some(max), speed: None })
            }
            _ => Verdict::Allow,
        }
    }
}

impl Policy for Allowlist {
    fn check_config(config: &Config) -> Result<(), String> {
        Rules::from_config(config).map(drop)
    }

    fn evaluate(config: &Config, request: &Request, usage: Usage) -> Verdict {
        match Rules::from_config(config) {
            Ok(rules) => rules.evaluate(request, usage),
            Err(e) => Verdict::deny(format!("policy misconfigured: {e}")),
        }
    }
}

switchyard_sdk::export_policy!(Allowlist);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{address, check_policy_config, config, evaluate, request};

    const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

    fn rules() -> Config {
        config(&[
            ("contracts", "0x0000000000000000000000000000000000000001"),
            ("functions", "0xa9059cbb"),
            ("max_value", "1 ether"),
            ("daily_limit", "100"),
            ("max_gas_limit", "500000"),
        ])
    }

    fn call(data: &[u8]) -> Request {
        Request { data: data.to_vec(), ..request() }
    }

    fn verdict(request: &Request, requests_today: u64) -> Verdict {
        evaluate::<Allowlist>(&rules(), request, Usage { requests_today })
    }

    #[test]
    fn allows_an_allowlisted_function_on_an_allowlisted_contract() {
        assert_eq!(verdict(&call(&[TRANSFER.as_slice(), &[0u8; 64]].concat()), 0), Verdict::Allow);
        assert_eq!(verdict(&call(&[]), 0), Verdict::Allow, "plain transfer to an allowed contract");
    }

    #[test]
    fn denies_other_contracts_functions_and_deployments() {
        let other = Request { to: Some(address(2)), ..request() };
        assert_eq!(verdict(&other, 0), Verdict::deny(format!("contract {} is not on the allowlist", address(2))));
        assert_eq!(
            verdict(&call(&[0xde, 0xad, 0xbe, 0xef]), 0),
            Verdict::deny("function 0xdeadbeef is not on the allowlist")
        );
        assert_eq!(
            verdict(&call(&[0xa9, 0x05]), 0),
            Verdict::deny("calldata is shorter than a 4-byte function selector")
        );
        let deploy = Request { to: None, ..request() };
        assert_eq!(verdict(&deploy, 0), Verdict::deny("contract deployment is not allowed"));
    }

    #[test]
    fn caps_value_per_request() {
        let rich = Request { value: U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64)), ..request() };
        let Verdict::Deny(reason) = verdict(&rich, 0) else { panic!("allowed a value above the cap") };
        assert!(reason.contains("above the cap"), "{reason}");
    }

    #[test]
    fn enforces_the_daily_limit_from_host_usage() {
        assert_eq!(verdict(&request(), 99), Verdict::Allow);
        assert_eq!(verdict(&request(), 100), Verdict::deny("this API key has used its 100 requests for today"));
    }

    #[test]
    fn lowers_a_gas_limit_above_the_cap() {
        let heavy = Request { gas_limit: Some(2_000_000), ..request() };
        assert_eq!(verdict(&heavy, 0), Verdict::AllowWithChanges(Changes { gas_limit: Some(500_000), speed: None }));
    }

    #[test]
    fn wildcard_admits_any_contract() {
        let cfg = config(&[("contracts", "*")]);
        let other = Request { to: Some(address(9)), data: vec![1, 2, 3, 4], ..request() };
        assert_eq!(evaluate::<Allowlist>(&cfg, &other, Usage::default()), Verdict::Allow);
    }

    #[test]
    fn config_errors_name_the_key() {
        assert!(check_policy_config::<Allowlist>(&config(&[])).unwrap_err().contains("`contracts`"));
        let bad = config(&[("contracts", "*"), ("functions", "transfer")]);
        assert!(check_policy_config::<Allowlist>(&bad).unwrap_err().contains("`functions`"));
        assert!(check_policy_config::<Allowlist>(&rules()).is_ok());
    }
}
