//! Account throttling against password guessing.
//!
//! Failed logins are counted per account in the store, so every replica
//! sees the same count. After `max_failures` within `window`, the account
//! is locked for `lockout`, doubling on each further lockout up to
//! `max_lockout`. While locked, every password attempt is refused, even a
//! right one, without spending a hash. A successful login clears the state.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Throttling policy (`throttle.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The first lockout; each further one doubles it.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    #[serde(with = "humantime_serde")]
    pub max_lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
        }
    }
}

/// What the store keeps per throttled key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures in the current window.
    pub failures: u32,
    pub window_started: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    /// Lockouts so far (drives the back-off).
    pub lockouts: u32,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl ThrottlePolicy {
    /// How long the account is still locked at `now`, if it is.
    pub fn locked_for(
        &self,
        state: Option<&ThrottleState>,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let until = state?.locked_until?;
        (until > now).then(|| (until - now).to_std().unwrap_or_default())
    }

    /// Before this instant a state that is not locked no longer matters:
    /// its window is over and so is the longest lockout it could have led
    /// to. Forgetting it then also lets the lockout back-off decay.
    pub fn stale_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - chrono(self.window) - chrono(self.max_lockout)
    }

    /// The state after one more failure at `now`.
    pub fn after_failure(&self, state: Option<ThrottleState>, now: DateTime<Utc>) -> ThrottleState {
        let mut state = state.unwrap_or(ThrottleState {
            failures: 0,
            window_started: now,
            locked_until: None,
            lockouts: 0,
        });
        if now - state.window_started > chrono(self.window) {
            state.failures = 0;
            state.window_started = now;
        }
        state.failures += 1;
        if state.failures >= self.max_failures.max(1) {
            let factor = 2u32.saturating_pow(state.lockouts.min(30));
            let lockout = self.lockout.saturating_mul(factor).min(self.max_lockout);
            state.locked_until = Some(now + chrono(lockout));
            state.lockouts = state.lockouts.saturating_add(1);
            state.failures = 0;
            state.window_started = now;
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_with_doubling_capped_lockouts() {
        let policy = ThrottlePolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(25),
        };
        let t0 = Utc::now();
        let mut state = None;
        for _ in 0..2 {
            state = Some(policy.after_failure(state, t0));
            assert_eq!(policy.locked_for(state.as_ref(), t0), None);
        }
        state = Some(policy.after_failure(state, t0));
        assert_eq!(
            policy.locked_for(state.as_ref(), t0),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            policy.locked_for(state.as_ref(), t0 + chrono::Duration::seconds(11)),
            None
        );
        // Second lockout doubles, third is capped.
        let t1 = t0 + chrono::Duration::seconds(11);
        for _ in 0..3 {
            state = Some(policy.after_failure(state, t1));
        }
        assert_eq!(
            policy.locked_for(state.as_ref(), t1),
            Some(Duration::from_secs(20))
        );
        let t2 = t1 + chrono::Duration::seconds(21);
        for _ in 0..3 {
            state = Some(policy.after_failure(state, t2));
        }
        assert_eq!(
            policy.locked_for(state.as_ref(), t2),
            Some(Duration::from_secs(25))
        );
    }

    #[test]
    fn state_goes_stale_after_the_window_and_the_longest_lockout() {
        let policy = ThrottlePolicy::default();
        let now = Utc::now();
        assert_eq!(
            now - policy.stale_before(now),
            chrono::Duration::minutes(15 + 60)
        );
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let policy = ThrottlePolicy {
            max_failures: 2,
            ..ThrottlePolicy::default()
        };
        let t0 = Utc::now();
        let state = policy.after_failure(None, t0);
        let later = t0 + chrono::Duration::minutes(16);
        let state = policy.after_failure(Some(state), later);
        assert_eq!(state.failures, 1);
        assert_eq!(policy.locked_for(Some(&state), later), None);
    }
}
