//! Rows as both dialects return them, and the column lists that select them.

use auth_core::store::from_stored_json;
use auth_core::store::StoreError;
use auth_core::{
    AuthorizationCode, BrowserSession, Client, Consent, Consumed, PendingAuthorization,
    RefreshTokenRecord, Session, ThrottleState, TokenDigest, User, UserSummary,
};
use auth_core::{Ceremony, CeremonyKind, Factor, FactorKind};
use auth_core::{EmailLink, LinkPurpose, OutgoingMail, QueuedMail};
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use uuid::Uuid;

/// The `users` columns every query selects, in [`UserRow`] order.
pub const USER_COLUMNS: &str =
    "id, username, email, password_hash, created_at, disabled, email_verified";

/// A `users` row as both dialects return it.
#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    pub email_verified: bool,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            username: row.username,
            email: row.email,
            password_hash: row.password_hash,
            created_at: row.created_at,
            disabled: row.disabled,
            email_verified: row.email_verified,
        }
    }
}

/// The `users` columns an account list selects, in [`UserSummaryRow`]
/// order: no password hash; the key the list is ordered by.
pub const USER_SUMMARY_COLUMNS: &str =
    "id, username, username_key, email, created_at, disabled, email_verified";

/// A listed account as both dialects return it, as a row or as a JSON
/// object (a page, see `Dialect::user_page_as_json`).
#[derive(Debug, sqlx::FromRow, serde::Deserialize)]
pub struct UserSummaryRow {
    pub id: Uuid,
    pub username: String,
    /// What the page is ordered by (byte order): read from a JSON page,
    /// whose order the caller checks; rows come in the statement's order.
    #[sqlx(skip)]
    pub username_key: String,
    pub email: String,
    #[serde(deserialize_with = "stored_time")]
    pub created_at: DateTime<Utc>,
    #[serde(deserialize_with = "stored_bool")]
    pub disabled: bool,
    #[serde(deserialize_with = "stored_bool")]
    pub email_verified: bool,
}

/// A boolean as SQLite keeps it: the integer 0 or 1 (JSON `true`/`false`
/// read too).
fn stored_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct StoredBool;
    impl serde::de::Visitor<'_> for StoredBool {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("0, 1, true or false")
        }
        fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<bool, E> {
            Ok(value != 0)
        }
        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<bool, E> {
            Ok(value != 0)
        }
    }
    deserializer.deserialize_any(StoredBool)
}

/// Sorts a JSON page by `username_key` unless it already is (the usual
/// case, checked in one pass): an aggregate's input order is not
/// promised, and its own `ORDER BY` re-sorted every page, at a cost
/// `cargo xtask bench` showed.
pub fn put_in_key_order(rows: &mut [UserSummaryRow]) {
    if !rows.is_sorted_by(|a, b| a.username_key <= b.username_key) {
        rows.sort_unstable_by(|a, b| a.username_key.cmp(&b.username_key));
    }
}

impl From<UserSummaryRow> for UserSummary {
    fn from(row: UserSummaryRow) -> Self {
        UserSummary {
            id: row.id,
            username: row.username,
            email: row.email,
            created_at: row.created_at,
            disabled: row.disabled,
            email_verified: row.email_verified,
        }
    }
}

/// A time as SQLite keeps it in text (`Sqlite::time`: fixed-width
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`), read field by field: chrono's general
/// RFC 3339 parser was a tenth of decoding a JSON page of accounts. Any
/// other RFC 3339 form is read by that parser.
fn stored_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    fixed_width_time(&text)
        .or_else(|| DateTime::parse_from_rfc3339(&text).ok().map(|t| t.to_utc()))
        .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, or `None`.
pub(crate) fn fixed_width_time(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ];
    if bytes.len() != 27 || separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes[from..to].iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    let time = date.and_hms_micro_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 26)?,
    )?;
    Some(time.and_utc())
}

/// `UPDATE`/`DELETE` of one row by id: zero rows means no such record.
pub fn require_found(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// The migrations of `migrator` not in `applied`, as `"<version> <description>"`.
pub fn pending_migrations(migrator: &Migrator, applied: &[i64]) -> Vec<String> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect()
}

/// Inserts a session: `$1`..`$10` are id, user id, created, expires,
/// revoked, scope, client id, auth time, amr, browser session id.
pub const SESSION_INSERT: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at, \
    revoked_at, scope, client_id, auth_time, amr, browser_session_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Session columns, aliased so they can sit beside [`USER_COLUMNS`] in one
/// row (`s` = sessions).
pub const SESSION_COLUMNS: &str = "s.id AS session_id, s.user_id AS session_user_id, \
    s.created_at AS session_created_at, s.expires_at AS session_expires_at, \
    s.revoked_at AS session_revoked_at, s.scope AS session_scope, \
    s.client_id AS session_client_id, s.auth_time AS session_auth_time, \
    s.amr AS session_amr, s.browser_session_id AS session_browser_session_id";

/// A session joined with its user, for `SELECT {SESSION_COLUMNS}, {JOINED_USER_COLUMNS}`.
pub const SESSIONS_WITH_USERS: &str = "sessions s JOIN users u ON u.id = s.user_id";

/// User columns qualified for joins (`u` = users), in [`UserRow`] order.
pub const JOINED_USER_COLUMNS: &str =
    "u.id, u.username, u.email, u.password_hash, u.created_at, u.disabled, u.email_verified";

/// Refresh-token columns, aliased (`t` = refresh_tokens).
pub const TOKEN_COLUMNS: &str = "t.digest AS token_digest, t.session_id AS token_session_id, \
    t.issued_at AS token_issued_at, t.expires_at AS token_expires_at, \
    t.used_at AS token_used_at, t.successor_digest AS token_successor_digest, \
    t.successor_sealed AS token_successor_sealed";

/// A `consents` row.
#[derive(Debug, sqlx::FromRow)]
pub struct ConsentRow {
    pub client_id: String,
    pub scope: String,
    pub granted_at: DateTime<Utc>,
}

impl From<ConsentRow> for Consent {
    fn from(row: ConsentRow) -> Self {
        Consent {
            client_id: row.client_id,
            scope: row.scope,
            granted_at: row.granted_at,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub session_id: Uuid,
    pub session_user_id: Uuid,
    pub session_created_at: DateTime<Utc>,
    pub session_expires_at: DateTime<Utc>,
    pub session_revoked_at: Option<DateTime<Utc>>,
    pub session_scope: Option<String>,
    pub session_client_id: String,
    pub session_auth_time: Option<DateTime<Utc>>,
    pub session_amr: Option<String>,
    pub session_browser_session_id: Option<Uuid>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: row.session_id,
            user_id: row.session_user_id,
            created_at: row.session_created_at,
            expires_at: row.session_expires_at,
            revoked_at: row.session_revoked_at,
            scope: row.session_scope,
            client_id: row.session_client_id,
            auth_time: row.session_auth_time,
            amr: row.session_amr,
            browser_session_id: row.session_browser_session_id,
        }
    }
}

/// A session joined with its user.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionUserRow {
    #[sqlx(flatten)]
    pub session: SessionRow,
    #[sqlx(flatten)]
    pub user: UserRow,
}

impl From<SessionUserRow> for (Session, User) {
    fn from(row: SessionUserRow) -> Self {
        (row.session.into(), row.user.into())
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct TokenRow {
    pub token_digest: Vec<u8>,
    pub token_session_id: Uuid,
    pub token_issued_at: DateTime<Utc>,
    pub token_expires_at: DateTime<Utc>,
    pub token_used_at: Option<DateTime<Utc>>,
    pub token_successor_digest: Option<Vec<u8>>,
    pub token_successor_sealed: Option<Vec<u8>>,
}

pub fn to_digest(bytes: Vec<u8>) -> Result<TokenDigest, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Other("stored token digest is not 32 bytes".into()))
}

impl TryFrom<TokenRow> for RefreshTokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(RefreshTokenRecord {
            digest: to_digest(row.token_digest)?,
            session_id: row.token_session_id,
            issued_at: row.token_issued_at,
            expires_at: row.token_expires_at,
            used_at: row.token_used_at,
            successor_digest: row.token_successor_digest.map(to_digest).transpose()?,
            successor_sealed: row.token_successor_sealed,
        })
    }
}

/// A refresh token joined with its session and user.
#[derive(Debug, sqlx::FromRow)]
pub struct TokenSessionUserRow {
    #[sqlx(flatten)]
    pub token: TokenRow,
    #[sqlx(flatten)]
    pub session: SessionRow,
    #[sqlx(flatten)]
    pub user: UserRow,
}

impl TryFrom<TokenSessionUserRow> for (RefreshTokenRecord, Session, User) {
    type Error = StoreError;

    fn try_from(row: TokenSessionUserRow) -> Result<Self, StoreError> {
        Ok((row.token.try_into()?, row.session.into(), row.user.into()))
    }
}

/// What a lost or repeated `consume_refresh_token` reports, from the
/// token's current row: used and still live means reuse, anything else is
/// simply invalid.
pub fn already_used_or_invalid(
    row: Option<TokenSessionUserRow>,
    now: DateTime<Utc>,
) -> Result<Consumed, StoreError> {
    let found: Option<(RefreshTokenRecord, Session, User)> =
        row.map(TryInto::try_into).transpose()?;
    Ok(Consumed::not_rotated(found, now))
}

/// `login_throttle` columns, in [`ThrottleRow`] order.
pub const THROTTLE_COLUMNS: &str = "failures, window_started, locked_until, lockouts";

#[derive(Debug, sqlx::FromRow)]
pub struct ThrottleRow {
    pub failures: i32,
    pub window_started: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    pub lockouts: i32,
}

impl From<ThrottleRow> for ThrottleState {
    fn from(row: ThrottleRow) -> Self {
        ThrottleState {
            failures: u32::try_from(row.failures).unwrap_or(0),
            window_started: row.window_started,
            locked_until: row.locked_until,
            lockouts: u32::try_from(row.lockouts).unwrap_or(0),
        }
    }
}

/// Counters as the databases store them (SQL `integer`).
pub fn as_sql_int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `clients` columns, in [`ClientRow`] order.
pub const CLIENT_COLUMNS: &str = "id, name, secret_digest, redirect_uris, \
    post_logout_redirect_uris, grant_types, scopes, first_party, created_at";

#[derive(Debug, sqlx::FromRow)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_digest: Option<Vec<u8>>,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub first_party: bool,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(Client {
            id: row.id,
            name: row.name,
            secret_digest: row.secret_digest.map(to_digest).transpose()?,
            redirect_uris: from_stored_json(&row.redirect_uris)?,
            post_logout_redirect_uris: from_stored_json(&row.post_logout_redirect_uris)?,
            grant_types: from_stored_json(&row.grant_types)?,
            scopes: from_stored_json(&row.scopes)?,
            first_party: row.first_party,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    pub params: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl TryFrom<RequestRow> for PendingAuthorization {
    type Error = StoreError;

    fn try_from(row: RequestRow) -> Result<Self, StoreError> {
        Ok(PendingAuthorization {
            id: row.id,
            params: from_stored_json(&row.params)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }
}

/// `authorization_codes` columns, in [`CodeRow`] order.
pub const CODE_COLUMNS: &str =
    "digest, client_id, session_id, grant_data, created_at, expires_at, used_at";

#[derive(Debug, sqlx::FromRow)]
pub struct CodeRow {
    pub digest: Vec<u8>,
    pub client_id: String,
    pub session_id: Uuid,
    pub grant_data: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl TryFrom<CodeRow> for AuthorizationCode {
    type Error = StoreError;

    fn try_from(row: CodeRow) -> Result<Self, StoreError> {
        Ok(AuthorizationCode {
            digest: to_digest(row.digest)?,
            client_id: row.client_id,
            session_id: row.session_id,
            grant: from_stored_json(&row.grant_data)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }
}

/// Browser-session columns, aliased beside [`JOINED_USER_COLUMNS`] (`b`).
pub const BROWSER_SESSION_COLUMNS: &str = "b.digest AS browser_digest, b.id AS browser_id, \
    b.user_id AS browser_user_id, b.auth_time AS browser_auth_time, \
    b.created_at AS browser_created_at, b.idle_expires_at AS browser_idle_expires_at, \
    b.expires_at AS browser_expires_at, b.amr AS browser_amr";

#[derive(Debug, sqlx::FromRow)]
pub struct BrowserSessionUserRow {
    #[sqlx(flatten)]
    pub browser: BrowserSessionRow,
    #[sqlx(flatten)]
    pub user: UserRow,
}

/// A browser session alone, for `SELECT {BROWSER_SESSION_COLUMNS} FROM browser_sessions b`.
#[derive(Debug, sqlx::FromRow)]
pub struct BrowserSessionRow {
    pub browser_digest: Vec<u8>,
    pub browser_id: Uuid,
    pub browser_user_id: Uuid,
    pub browser_auth_time: DateTime<Utc>,
    pub browser_created_at: DateTime<Utc>,
    pub browser_idle_expires_at: DateTime<Utc>,
    pub browser_expires_at: DateTime<Utc>,
    pub browser_amr: String,
}

impl TryFrom<BrowserSessionRow> for BrowserSession {
    type Error = StoreError;

    fn try_from(row: BrowserSessionRow) -> Result<Self, StoreError> {
        Ok(BrowserSession {
            id: row.browser_id,
            digest: to_digest(row.browser_digest)?,
            user_id: row.browser_user_id,
            auth_time: row.browser_auth_time,
            created_at: row.browser_created_at,
            idle_expires_at: row.browser_idle_expires_at,
            expires_at: row.browser_expires_at,
            amr: row
                .browser_amr
                .split(' ')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `factors` columns, in [`FactorRow`] order.
pub const FACTOR_COLUMNS: &str =
    "id, user_id, kind, name, data, credential_id, last_step, created_at, last_used_at";

#[derive(Debug, sqlx::FromRow)]
pub struct FactorRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub name: String,
    pub data: String,
    pub credential_id: Option<String>,
    pub last_step: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<FactorRow> for Factor {
    type Error = StoreError;

    fn try_from(row: FactorRow) -> Result<Self, StoreError> {
        Ok(Factor {
            id: row.id,
            user_id: row.user_id,
            kind: FactorKind::parse(&row.kind)
                .ok_or_else(|| StoreError::Other(format!("unknown factor kind {}", row.kind)))?,
            name: row.name,
            data: row.data,
            credential_id: row.credential_id,
            last_step: row.last_step,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        })
    }
}

/// `ceremonies` columns, in [`CeremonyRow`] order.
pub const CEREMONY_COLUMNS: &str = "digest, kind, user_id, data, expires_at";

#[derive(Debug, sqlx::FromRow)]
pub struct CeremonyRow {
    pub digest: Vec<u8>,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub data: String,
    pub expires_at: DateTime<Utc>,
}

impl TryFrom<CeremonyRow> for Ceremony {
    type Error = StoreError;

    fn try_from(row: CeremonyRow) -> Result<Self, StoreError> {
        Ok(Ceremony {
            digest: to_digest(row.digest)?,
            kind: CeremonyKind::parse(&row.kind)
                .ok_or_else(|| StoreError::Other(format!("unknown ceremony kind {}", row.kind)))?,
            user_id: row.user_id,
            data: row.data,
            expires_at: row.expires_at,
        })
    }
}

impl TryFrom<BrowserSessionUserRow> for (BrowserSession, User) {
    type Error = StoreError;

    fn try_from(row: BrowserSessionUserRow) -> Result<Self, StoreError> {
        Ok((row.browser.try_into()?, row.user.into()))
    }
}

/// `email_links` columns, in [`LinkRow`] order.
pub const LINK_COLUMNS: &str = "digest, purpose, user_id, email, created_at, expires_at, used_at";

#[derive(Debug, sqlx::FromRow)]
pub struct LinkRow {
    pub digest: Vec<u8>,
    pub purpose: String,
    pub user_id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl TryFrom<LinkRow> for EmailLink {
    type Error = StoreError;

    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        Ok(EmailLink {
            digest: to_digest(row.digest)?,
            purpose: LinkPurpose::parse(&row.purpose).ok_or_else(|| {
                StoreError::Other(format!("unknown link purpose {}", row.purpose))
            })?,
            user_id: row.user_id,
            email: row.email,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

/// A claimed `mail_outbox` row (what `RETURNING` gives back).
pub const CLAIMED_MAIL_COLUMNS: &str =
    "id, recipient, subject, text_body, html_body, created_at, attempts";

#[derive(Debug, sqlx::FromRow)]
pub struct ClaimedMailRow {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

impl ClaimedMailRow {
    pub fn into_queued(self, claim: Uuid) -> QueuedMail {
        QueuedMail {
            mail: OutgoingMail {
                id: self.id,
                to: self.recipient,
                subject: self.subject,
                text: self.text_body,
                html: self.html_body,
                created_at: self.created_at,
            },
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            claim,
        }
    }
}

/// `audit_log` columns, in [`AuditRow`] order.
pub const AUDIT_COLUMNS: &str =
    "id, time, actor, action, target, outcome, client_address, request_id";

#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub client_address: Option<String>,
    pub request_id: Option<String>,
}

impl From<AuditRow> for auth_core::AuditEvent {
    fn from(row: AuditRow) -> Self {
        auth_core::AuditEvent {
            id: row.id,
            time: row.time,
            actor: row.actor,
            action: row.action,
            target: row.target,
            outcome: row.outcome,
            client_address: row.client_address,
            request_id: row.request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str) -> UserSummaryRow {
        UserSummaryRow {
            id: Uuid::nil(),
            username: key.to_uppercase(),
            username_key: key.to_owned(),
            email: format!("{key}@x.org"),
            created_at: DateTime::UNIX_EPOCH,
            disabled: false,
            email_verified: false,
        }
    }

    fn keys(rows: &[UserSummaryRow]) -> Vec<&str> {
        rows.iter().map(|r| r.username_key.as_str()).collect()
    }

    #[test]
    fn a_page_out_of_order_is_put_in_byte_order() {
        let mut rows = ["b", "a_b", "a-b", "alpha"].map(listed);
        put_in_key_order(&mut rows);
        assert_eq!(keys(&rows), ["a-b", "a_b", "alpha", "b"]);
        put_in_key_order(&mut rows);
        assert_eq!(
            keys(&rows),
            ["a-b", "a_b", "alpha", "b"],
            "sorted stays put"
        );
    }
}
