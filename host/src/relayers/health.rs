//! A relayer's health, judged at each watcher poll from what was checked:
//! the RPC answered within its timeout, the balance against the configured
//! minimum, the pending count, and the recent success rate and latency of
//! its sends.
//!
//! - **disabled**: the RPC did not answer, the balance is below the
//!   minimum, or most recent sends were refused. Not offered to the
//!   selector; back by itself at the first poll that finds it well.
//! - **degraded**: slow sends, a poor success rate or a long pending queue.
//!   Still offered: the selector sees the same stats and may avoid it.

use std::fmt;

use alloy_primitives::U256;
use serde::Serialize;

/// Sends remembered for the success rate.
pub const RECENT_SENDS: usize = 50;
/// Below this many recent sends, the success rate is not judged.
const MIN_SENDS: usize = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Not yet checked since start: not offered.
    #[default]
    Unchecked,
    Healthy,
    Degraded,
    Disabled,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unchecked => "unchecked",
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Disabled => "disabled",
        }
    }

    /// Whether the selector is offered it.
    pub fn is_offered(self) -> bool {
        matches!(self, HealthState::Healthy | HealthState::Degraded)
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thresholds, from `[network]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Below it a relayer cannot be trusted to pay for gas: disabled.
    pub min_balance: U256,
    /// More transactions in flight than this: degraded.
    pub max_pending: u32,
    /// Sends slower than this on average: degraded.
    pub slow_send_ms: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy { min_balance: U256::ZERO, max_pending: 64, slow_send_ms: 2_000 }
    }
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `Err` with why when the check failed (the RPC did not answer).
    pub reachable: Result<(), String>,
    pub balance: U256,
    pub pending: u32,
    /// The last sends, oldest first: accepted or not.
    pub recent: Vec<bool>,
    pub latency_ms: u32,
}

/// The verdict, with every reason that led to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub state: HealthState,
    pub reasons: Vec<String>,
    /// The balance is below the minimum.
    pub low_balance: bool,
}

/// Success rate of `recent` sends in basis points; `None` below
/// [`MIN_SENDS`].
pub fn success_rate_bps(recent: &[bool]) -> Option<u32> {
    if recent.len() < MIN_SENDS {
        return None;
    }
    let accepted = recent.iter().filter(|&&ok| ok).count();
    Some(u32::try_from(accepted * 10_000 / recent.len()).unwrap_or(10_000))
}

impl HealthPolicy {
    pub fn assess(&self, seen: &Observed) -> Assessment {
        let mut disabled = Vec::new();
        let mut degraded = Vec::new();
        if let Err(error) = &seen.reachable {
            disabled.push(format!("check failed: {error}"));
        }
        let low_balance = seen.reachable.is_ok() && seen.balance < self.min_balance;
        if low_balance {
            disabled.push(format!("balance {} wei is below the minimum {} wei", seen.balance, self.min_balance));
        }
        match success_rate_bps(&seen.recent) {
            Some(rate) if rate < 5_000 => disabled.push(format!("only {}% of recent sends accepted", rate / 100)),
            Some(rate) if rate < 9_000 => degraded.push(format!("{}% of recent sends accepted", rate / 100)),
            _ => {}
        }
        if seen.latency_ms > self.slow_send_ms {
            degraded.push(format!("sends take {} ms (over {} ms)", seen.latency_ms, self.slow_send_ms));
        }
        if seen.pending > self.max_pending {
            degraded.push(format!("{} transactions pending (over {})", seen.pending, self.max_pending));
        }
        let state = match (disabled.is_empty(), degraded.is_empty()) {
            (false, _) => HealthState::Disabled,
            (true, false) => HealthState::Degraded,
            (true, true) => HealthState::Healthy,
        };
        disabled.extend(degraded);
        Assessment { state, reasons: disabled, low_balance }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well() -> Observed {
        Observed {
            reachable: Ok(()),
            balance: U256::from(10u64.pow(18)),
            pending: 0,
            recent: vec![true; 20],
            latency_ms: 5,
        }
    }

    fn policy() -> HealthPolicy {
        HealthPolicy { min_balance: U256::from(10u64.pow(16)), max_pending: 10, slow_send_ms: 1_000 }
    }

    #[test]
    fn each_finding_moves_the_state_and_says_why() {
        let policy = policy();
        assert_eq!(
            policy.assess(&well()),
            Assessment { state: HealthState::Healthy, reasons: vec![], low_balance: false }
        );

        let poor = policy.assess(&Observed { balance: U256::from(5), ..well() });
        assert_eq!((poor.state, poor.low_balance), (HealthState::Disabled, true));
        assert_eq!(poor.reasons, ["balance 5 wei is below the minimum 10000000000000000 wei"]);

        let down =
            policy.assess(&Observed { reachable: Err("connection refused".into()), balance: U256::ZERO, ..well() });
        assert_eq!((down.state, down.low_balance), (HealthState::Disabled, false), "unknown, not low");

        let slow = policy.assess(&Observed { latency_ms: 1_500, pending: 11, ..well() });
        assert_eq!(slow.state, HealthState::Degraded);
        assert_eq!(slow.reasons.len(), 2, "{:?}", slow.reasons);

        let mut recent = vec![true; 8];
        recent.extend([false; 2]);
        assert_eq!(policy.assess(&Observed { recent: recent.clone(), ..well() }).state, HealthState::Degraded);
        recent.extend([false; 10]);
        assert_eq!(policy.assess(&Observed { recent, ..well() }).state, HealthState::Disabled);
        // Too few sends to judge.
        assert_eq!(policy.assess(&Observed { recent: vec![false; 3], ..well() }).state, HealthState::Healthy);
    }

    #[test]
    fn only_checked_and_not_disabled_relayers_are_offered() {
        let offered: Vec<bool> =
            [HealthState::Unchecked, HealthState::Healthy, HealthState::Degraded, HealthState::Disabled]
                .map(HealthState::is_offered)
                .into();
        assert_eq!(offered, [false, true, true, false]);
    }
}
