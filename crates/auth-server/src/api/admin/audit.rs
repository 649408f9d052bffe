//! `/admin/v1/audit`: the audit log, oldest first.

use std::sync::Arc;

use auth_core::{AuditEvent, AuditQuery, Store};
use chrono::{DateTime, Utc};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::{authorize, decode_cursor, encode_cursor, AdminTag, AdminToken, ForeignCursor};
use crate::api::problem::ProblemResponse;
use crate::api::AppState;

/// One security event. Never a secret or a token.
#[derive(Debug, Object)]
pub struct AuditEntry {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    /// `user:<id>`, `client:<id>`, `operator` (the command line) or
    /// `anonymous` (e.g. a failed sign-in).
    pub actor: String,
    /// Dotted: `sign_in`, `password.changed`, `client.created`, ...
    pub action: String,
    /// `user:<id>`, `client:<id>` or `session:<id>`; none for a sign-in
    /// attempt with an unknown login (what was typed is never recorded: it
    /// is sometimes a password).
    #[oai(nullable)]
    pub target: Option<String>,
    /// `success`, `failure`, `throttled` or `refused`.
    pub outcome: String,
    /// The caller's address (behind trusted proxies, the forwarded one).
    #[oai(nullable)]
    pub client_address: Option<String>,
    /// The request's `X-Request-Id`, to find its log lines.
    #[oai(nullable)]
    pub request_id: Option<String>,
}

impl From<AuditEvent> for AuditEntry {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id,
            time: event.time,
            actor: event.actor,
            action: event.action,
            target: event.target,
            outcome: event.outcome,
            client_address: event.client_address,
            request_id: event.request_id,
        }
    }
}

/// One page of the audit log, oldest first.
#[derive(Debug, Object)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; `null` on the last one (for
    /// now: poll again with it later for newer events).
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

pub struct AdminAuditApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> AdminAuditApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "AdminTag::AdminAudit")]
impl<S: Store> AdminAuditApi<S> {
    /// Audit events, oldest first; every filter given must hold.
    #[oai(path = "/audit", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn query_audit(
        &self,
        auth: AdminToken,
        /// From this time on (RFC 3339, inclusive).
        since: Query<Option<DateTime<Utc>>>,
        /// Before this time (RFC 3339, exclusive).
        until: Query<Option<DateTime<Utc>>>,
        /// Exactly, e.g. `user:<id>` or `client:<id>`.
        #[oai(validator(max_length = 256))]
        actor: Query<Option<String>>,
        /// Exactly, e.g. `sign_in`.
        #[oai(validator(max_length = 64))]
        action: Query<Option<String>>,
        /// Exactly, e.g. `user:<id>`.
        #[oai(validator(max_length = 256))]
        target: Query<Option<String>>,
        #[oai(validator(max_length = 512))] cursor: Query<Option<String>>,
        /// 1–1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<AuditPage>, ProblemResponse> {
        authorize(&self.state, &auth).await?;
        let after = match decode_cursor(cursor.0.as_deref())? {
            None => None,
            Some(position) => Some(Uuid::parse_str(&position).map_err(|_| ForeignCursor)?),
        };
        let present = |value: Option<String>| value.filter(|v| !v.is_empty());
        let page = self
            .state
            .service
            .audit_page(AuditQuery {
                since: since.0,
                until: until.0,
                actor: present(actor.0),
                action: present(action.0),
                target: present(target.0),
                after,
                limit: limit.0.unwrap_or(100),
            })
            .await?;
        Ok(Json(AuditPage {
            items: page.items.into_iter().map(AuditEntry::from).collect(),
            next_cursor: page.next.as_deref().map(encode_cursor),
        }))
    }
}
