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

/// Who acted, as the record's `actor` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in person acting on their own account.
    User(Uuid),
    /// A client of the administration API (its `client_credentials` token).
    Client(String),
    /// Whoever runs the `tessera` command line on the server.
    Operator,
    /// Nobody proven yet (a sign-in attempt, a link from a mail).
    Anonymous,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::Client(id) => write!(f, "client:{id}"),
            Actor::Operator => f.write_str("operator"),
            Actor::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Wrong credentials, a wrong code, a forged answer.
    Failure,
    /// Refused before checking: too many failures.
    Throttled,
    /// Right credentials, but not allowed (disabled account, reused token).
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Throttled => "throttled",
            Outcome::Refused => "refused",
        }
    }
}

/// The request an action came in with: filled in by the HTTP server for
/// each request, empty for the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub client_address: Option<String>,
    pub request_id: Option<String>,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Runs `work` with `origin` as the request every audit record it writes
/// names. The server wraps each request in it once, so no use case has to
/// carry addresses and request ids through its signature.
pub async fn with_origin<F: std::future::Future>(origin: Origin, work: F) -> F::Output {
    ORIGIN.scope(origin, work).await
}

/// The current request's origin (empty outside one).
pub fn current_origin() -> Origin {
    ORIGIN.try_with(Origin::clone).unwrap_or_default()
}

/// What an audit record says happened, before time, id and origin are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audited {
    pub actor: Actor,
    pub action: &'static str,
    pub target: Option<String>,
    pub outcome: Outcome,
}

impl Audited {
    pub fn new(actor: Actor, action: &'static str, outcome: Outcome) -> Self {
        Self {
            actor,
            action,
            target: None,
            outcome,
        }
    }

    /// The account acted on.
    pub fn on_user(mut self, id: Uuid) -> Self {
        self.target = Some(format!("user:{id}"));
        self
    }

    /// The client acted on.
    pub fn on_client(mut self, id: &str) -> Self {
        self.target = Some(format!("client:{id}"));
        self
    }

    /// The session acted on.
    pub fn on_session(mut self, id: Uuid) -> Self {
        self.target = Some(format!("session:{id}"));
        self
    }

    /// The full record, stamped now, with the current request's origin.
    pub fn into_event(self) -> AuditEvent {
        let origin = current_origin();
        AuditEvent {
            id: Uuid::now_v7(),
            time: crate::model::to_stored_precision(Utc::now()),
            actor: self.actor.to_string(),
            action: self.action.to_owned(),
            target: self.target,
            outcome: self.outcome.as_str().to_owned(),
            client_address: origin.client_address,
            request_id: origin.request_id,
        }
    }
}

impl<S: crate::store::Store> crate::service::AuthService<S> {
    /// Writes one audit record and the matching structured log line.
    ///
    /// A store failure is logged, not returned: the action it records has
    /// already happened and must not be reported as failed.
    pub async fn audit(&self, audited: Audited) {
        let event = audited.into_event();
        tracing::info!(
            target: "tessera::audit",
            id = %event.id,
            actor = %event.actor,
            action = %event.action,
            target = event.target.as_deref().unwrap_or(""),
            outcome = %event.outcome,
            client_address = event.client_address.as_deref().unwrap_or(""),
            request_id = event.request_id.as_deref().unwrap_or(""),
            "audit"
        );
        if let Err(err) = self.store().append_audit(&event).await {
            tracing::error!(error = %err, id = %event.id, action = %event.action, "audit record not stored");
        }
    }

    /// A page of the audit log, oldest first: a single store call; the
    /// cursor is the last record's id.
    pub async fn audit_page(
        &self,
        query: AuditQuery,
    ) -> Result<crate::Page<AuditEvent>, crate::AuthError> {
        let limit = crate::admin::page_limit(query.limit);
        let items = self
            .store()
            .query_audit(&AuditQuery {
                limit: limit + 1,
                ..query
            })
            .await?;
        Ok(crate::admin::into_page(items, limit, |e| e.id.to_string()))
    }
}
