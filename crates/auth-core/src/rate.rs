//! Request rate limits kept in the store (resending mail, `/password/forgot`):
//! at most `max` requests per `window` per key, shared by every replica.
//!
//! They reuse the login throttle's records ([`ThrottleState`]): `failures`
//! counts requests in the window that started at `window_started`, and
//! `locked_until` is the window's end once the count is exceeded. The
//! throttle purge forgets them like login state.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::service::chrono_duration;
use crate::throttle::ThrottleState;

/// At most `max` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub max: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl RateLimit {
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }

    /// The state after one more request at `now` (a new window when the
    /// last one is over).
    pub fn after_request(&self, state: Option<ThrottleState>, now: DateTime<Utc>) -> ThrottleState {
        let window = chrono_duration(self.window);
        let mut state =
            state
                .filter(|s| now - s.window_started < window)
                .unwrap_or(ThrottleState {
                    failures: 0,
                    window_started: now,
                    locked_until: None,
                    lockouts: 0,
                });
        state.failures = state.failures.saturating_add(1);
        if state.failures > self.max {
            state.locked_until = Some(state.window_started + window);
        }
        state
    }

    /// How long until a request is allowed again, when `state` (just
    /// updated by [`after_request`](Self::after_request)) is over the limit.
    pub fn refused_for(&self, state: &ThrottleState, now: DateTime<Utc>) -> Option<Duration> {
        if state.failures <= self.max {
            return None;
        }
        let until = state.locked_until?;
        Some(
            (until - now)
                .to_std()
                .unwrap_or_default()
                .max(Duration::from_secs(1)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_over_the_limit_is_refused_until_the_window_ends() {
        let limit = RateLimit::new(2, Duration::from_secs(60));
        let start = Utc::now();
        let first = limit.after_request(None, start);
        assert_eq!(limit.refused_for(&first, start), None);
        let second = limit.after_request(Some(first), start);
        assert_eq!(limit.refused_for(&second, start), None);
        let later = start + chrono::Duration::seconds(20);
        let third = limit.after_request(Some(second), later);
        assert_eq!(
            limit.refused_for(&third, later),
            Some(Duration::from_secs(40))
        );
        let next_window = start + chrono::Duration::seconds(61);
        let fresh = limit.after_request(Some(third), next_window);
        assert_eq!(fresh.failures, 1);
        assert_eq!(limit.refused_for(&fresh, next_window), None);
    }
}
