//! {{name}}: a policy plugin. Admits requests up to a value cap and a daily
//! count per API key.
//!
//! Config: `max_value` (e.g. `"1 ether"`, optional), `daily_limit` (optional).

use switchyard_sdk::policy::{Policy, Usage, Verdict};
use switchyard_sdk::{Config, Request};

pub struct Plugin;

impl Policy for Plugin {
    fn check_config(config: &Config) -> Result<(), String> {
        config.amount("max_value").map_err(|e| e.to_string())?;
        config.parse::<u64>("daily_limit").map(drop).map_err(|e| e.to_string())
    }

    fn evaluate(config: &Config, request: &Request, usage: Usage) -> Verdict {
        if let Ok(Some(max)) = config.amount("max_value") {
            if request.value > max {
                return Verdict::deny("value above this key's limit");
            }
        }
        if let Ok(Some(limit)) = config.parse::<u64>("daily_limit") {
            if usage.requests_today >= limit {
                return Verdict::deny("daily request limit reached");
            }
        }
        Verdict::Allow
    }
}

switchyard_sdk::export_policy!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{check_policy_config, config, evaluate, request};
    use switchyard_sdk::U256;

    #[test]
    fn admits_within_the_limits() {
        let limits = config(&[("max_value", "1 ether"), ("daily_limit", "10")]);
        assert_eq!(evaluate::<Plugin>(&limits, &request(), Usage { requests_today: 9 }), Verdict::Allow);
    }

    #[test]
    fn denies_above_the_value_cap_and_past_the_daily_limit() {
        let limits = config(&[("max_value", "1 wei"), ("daily_limit", "10")]);
        let rich = Request { value: U256::from(2u8), ..request() };
        assert_eq!(evaluate::<Plugin>(&limits, &rich, Usage::default()), Verdict::deny("value above this key's limit"));
        let busy = Usage { requests_today: 10 };
        let cheap = Request { value: U256::ZERO, ..request() };
        assert_eq!(evaluate::<Plugin>(&limits, &cheap, busy), Verdict::deny("daily request limit reached"));
    }

    #[test]
    fn rejects_a_bad_config() {
        assert!(check_policy_config::<Plugin>(&config(&[("daily_limit", "many")])).is_err());
    }
}
