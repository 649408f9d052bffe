//! The audit log's records: who did what, to what, when, from where, and
//! how it ended. Append-only in the store (no update, no delete but the
//! retention purge), never holding a secret or a token.
//!
//! Records are named by a UUIDv7, so their ids sort by time; a listing's
//! cursor is the last id seen, which keeps pages stable while records are
//! appended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// UUIDv7: sorts by time.
    pub id: Uuid,
    pub time: DateTime<Utc>,
    /// Who acted: `user:<id>`, `client:<id>`, `operator` (the CLI) or
    /// `anonymous` (a sign-in attempt names the login it tried in `target`).
    pub actor: String,
    /// What happened, dotted: `sign_in`, `factor.added`, `client.created`, ...
    pub action: String,
    /// What it happened to: `user:<id>`, `client:<id>`, `session:<id>`.
    pub target: Option<String>,
    /// `success`, `failure`, `throttled`, `refused`.
    pub outcome: String,
    /// The caller's address (after trusted proxies), when known.
    pub client_address: Option<String>,
    /// The request's `X-Request-Id`, when there was a request.
    pub request_id: Option<String>,
}

/// A query of the log: every condition given must hold. Results are oldest
/// first, after `after` (the cursor), at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// Only records with a larger id (the previous page's last).
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl AuditQuery {
    /// Whether `event` answers this query (the memory store's filter, and
    /// the reference the others are tested against).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.since.is_none_or(|since| event.time >= since)
            && self.until.is_none_or(|until| event.time < until)
            && self.actor.as_ref().is_none_or(|a| *a == event.actor)
            && self.action.as_ref().is_none_or(|a| *a == event.action)
            && self
                .target
                .as_ref()
                .is_none_or(|t| event.target.as_ref() == Some(t))
            && self.after.is_none_or(|after| event.id > after)
    }
}
