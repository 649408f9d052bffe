//! The documents Tessera keeps in MongoDB, as typed serde structs.
//!
//! Every query value is a field of one of these structs or of a validated
//! domain value, converted to a BSON scalar; nothing is ever parsed from
//! request input into a document. A username such as `{"$ne": ""}` is a
//! string here and can only ever be compared as one.

use auth_core::store::{from_stored_json, to_stored_json};
use auth_core::{
    AuthorizationCode, BrowserSession, Client, Consent, NewRefreshToken, NewUser,
    PendingAuthorization, RefreshTokenRecord, Session, StoreError, ThrottleState, TokenDigest,
    User, UserSummary,
};
use auth_core::{Ceremony, CeremonyKind, Factor, FactorKind};
use auth_core::{EmailLink, LinkPurpose, OutgoingMail, QueuedMail};
use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, spec::BinarySubtype, Binary, Document};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub(crate) const USERS: &str = "users";
pub(crate) const SESSIONS: &str = "sessions";
pub(crate) const REFRESH_TOKENS: &str = "refresh_tokens";
pub(crate) const LOGIN_THROTTLE: &str = "login_throttle";
pub(crate) const MIGRATIONS: &str = "_migrations";
pub(crate) const CLIENTS: &str = "clients";
pub(crate) const AUTHORIZATION_REQUESTS: &str = "authorization_requests";
pub(crate) const AUTHORIZATION_CODES: &str = "authorization_codes";
pub(crate) const BROWSER_SESSIONS: &str = "browser_sessions";
pub(crate) const CONSENTS: &str = "consents";
pub(crate) const EMAIL_LINKS: &str = "email_links";
pub(crate) const MAIL_OUTBOX: &str = "mail_outbox";
pub(crate) const FACTORS: &str = "factors";
pub(crate) const RECOVERY_CODES: &str = "recovery_codes";
pub(crate) const CEREMONIES: &str = "ceremonies";
pub(crate) const AUDIT_LOG: &str = "audit_log";
/// One unique index for both factor rules: `totp:<user>` (one app per
/// account) and `passkey:<credential id>` (one account per credential).
pub(crate) const FACTOR_UNIQUE_INDEX: &str = "factors_unique_key_unique";

/// Unique index names; duplicate-key errors name them, which is how a
/// conflict is mapped to the field it is about.
pub(crate) const USERNAME_INDEX: &str = "users_username_key_unique";
pub(crate) const EMAIL_INDEX: &str = "users_email_key_unique";

pub(crate) fn bson_uuid(id: Uuid) -> bson::Uuid {
    bson::Uuid::from_bytes(id.into_bytes())
}

pub(crate) fn uuid(id: bson::Uuid) -> Uuid {
    Uuid::from_bytes(id.bytes())
}

pub(crate) fn bson_time(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

pub(crate) fn time(t: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn binary(bytes: &[u8]) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    }
}

pub(crate) fn digest(bytes: Binary) -> Result<TokenDigest, StoreError> {
    bytes
        .bytes
        .try_into()
        .map_err(|_| StoreError::Other("stored token digest is not 32 bytes".into()))
}

/// `users`: unique indexes on the two keys (NFKC-normalised, lowercased by
/// `auth-core`) make uniqueness case-insensitive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    pub username: String,
    pub username_key: String,
    pub email: String,
    pub email_key: String,
    pub password_hash: String,
    pub created_at: bson::DateTime,
    pub disabled: bool,
    /// Absent on accounts older than mail support: not verified.
    #[serde(default)]
    pub email_verified: bool,
}

impl From<&NewUser> for UserDoc {
    fn from(user: &NewUser) -> Self {
        Self {
            id: bson_uuid(user.id),
            username: user.username.as_str().to_owned(),
            username_key: user.username.key().to_owned(),
            email: user.email.as_str().to_owned(),
            email_key: user.email.key().to_owned(),
            password_hash: user.password_hash.clone(),
            created_at: bson_time(user.created_at),
            disabled: false,
            email_verified: false,
        }
    }
}

impl From<UserDoc> for User {
    fn from(doc: UserDoc) -> Self {
        User {
            id: uuid(doc.id),
            username: doc.username,
            email: doc.email,
            password_hash: doc.password_hash,
            created_at: time(doc.created_at),
            disabled: doc.disabled,
            email_verified: doc.email_verified,
        }
    }
}

/// A `users` document as a listing reads it: the fields of [`UserSummary`]
/// only, so the password hash stays in the database.
#[derive(Debug, Deserialize)]
pub(crate) struct UserSummaryDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    pub username: String,
    pub email: String,
    pub created_at: bson::DateTime,
    pub disabled: bool,
    #[serde(default)]
    pub email_verified: bool,
}

impl UserSummaryDoc {
    /// The fields to ask for (`_id` comes unasked).
    pub fn projection() -> Document {
        doc! { "username": 1, "email": 1, "created_at": 1, "disabled": 1, "email_verified": 1 }
    }
}

impl From<UserSummaryDoc> for UserSummary {
    fn from(doc: UserSummaryDoc) -> Self {
        UserSummary {
            id: uuid(doc.id),
            username: doc.username,
            email: doc.email,
            created_at: time(doc.created_at),
            disabled: doc.disabled,
            email_verified: doc.email_verified,
        }
    }
}

/// `sessions`. `user` is never written: a `$lookup` fills it on reads that
/// need the account too, so they take one round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    pub user_id: bson::Uuid,
    pub created_at: bson::DateTime,
    pub expires_at: bson::DateTime,
    pub revoked_at: Option<bson::DateTime>,
    pub scope: Option<String>,
    /// Absent on sessions written before clients existed: v1's client.
    #[serde(default = "legacy_client_id")]
    pub client_id: String,
    /// The next three are absent on sessions from before OpenID Connect.
    #[serde(default)]
    pub auth_time: Option<bson::DateTime>,
    #[serde(default)]
    pub amr: Option<String>,
    #[serde(default)]
    pub browser_session_id: Option<bson::Uuid>,
    #[serde(default, skip_serializing)]
    pub user: Option<UserDoc>,
}

fn legacy_client_id() -> String {
    auth_core::client::LEGACY_CLIENT_ID.to_owned()
}

impl From<&Session> for SessionDoc {
    fn from(session: &Session) -> Self {
        Self {
            id: bson_uuid(session.id),
            user_id: bson_uuid(session.user_id),
            created_at: bson_time(session.created_at),
            expires_at: bson_time(session.expires_at),
            revoked_at: session.revoked_at.map(bson_time),
            scope: session.scope.clone(),
            client_id: session.client_id.clone(),
            auth_time: session.auth_time.map(bson_time),
            amr: session.amr.clone(),
            browser_session_id: session.browser_session_id.map(bson_uuid),
            user: None,
        }
    }
}

impl SessionDoc {
    pub fn into_session(self) -> (Session, Option<User>) {
        let session = Session {
            id: uuid(self.id),
            user_id: uuid(self.user_id),
            created_at: time(self.created_at),
            expires_at: time(self.expires_at),
            revoked_at: self.revoked_at.map(time),
            scope: self.scope,
            client_id: self.client_id,
            auth_time: self.auth_time.map(time),
            amr: self.amr,
            browser_session_id: self.browser_session_id.map(uuid),
        };
        (session, self.user.map(User::from))
    }
}

/// `refresh_tokens`, keyed by the SHA-256 digest of the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenDoc {
    #[serde(rename = "_id")]
    pub digest: Binary,
    pub session_id: bson::Uuid,
    pub issued_at: bson::DateTime,
    pub expires_at: bson::DateTime,
    pub used_at: Option<bson::DateTime>,
    pub successor_digest: Option<Binary>,
    pub successor_sealed: Option<Binary>,
}

impl TokenDoc {
    pub fn new(token: &NewRefreshToken, session_id: bson::Uuid) -> Self {
        Self {
            digest: binary(&token.digest),
            session_id,
            issued_at: bson_time(token.issued_at),
            expires_at: bson_time(token.expires_at),
            used_at: None,
            successor_digest: None,
            successor_sealed: None,
        }
    }
}

impl TryFrom<TokenDoc> for RefreshTokenRecord {
    type Error = StoreError;

    fn try_from(doc: TokenDoc) -> Result<Self, StoreError> {
        Ok(RefreshTokenRecord {
            digest: digest(doc.digest)?,
            session_id: uuid(doc.session_id),
            issued_at: time(doc.issued_at),
            expires_at: time(doc.expires_at),
            used_at: doc.used_at.map(time),
            successor_digest: doc.successor_digest.map(digest).transpose()?,
            successor_sealed: doc.successor_sealed.map(|b| b.bytes),
        })
    }
}

/// `login_throttle`, keyed by the throttle key. `version` makes updates
/// compare-and-set: a writer that read an older version changes nothing and
/// tries again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ThrottleDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub failures: i64,
    pub window_started: bson::DateTime,
    pub locked_until: Option<bson::DateTime>,
    pub lockouts: i64,
    pub version: i64,
}

impl ThrottleDoc {
    pub fn new(key: &str, state: &ThrottleState, version: i64) -> Self {
        Self {
            key: key.to_owned(),
            failures: i64::from(state.failures),
            window_started: bson_time(state.window_started),
            locked_until: state.locked_until.map(bson_time),
            lockouts: i64::from(state.lockouts),
            version,
        }
    }
}

impl From<ThrottleDoc> for ThrottleState {
    fn from(doc: ThrottleDoc) -> Self {
        ThrottleState {
            failures: u32::try_from(doc.failures).unwrap_or(0),
            window_started: time(doc.window_started),
            locked_until: doc.locked_until.map(time),
            lockouts: u32::try_from(doc.lockouts).unwrap_or(0),
        }
    }
}

/// `_migrations`: one per applied step, keyed by version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MigrationDoc {
    #[serde(rename = "_id")]
    pub version: i64,
    pub description: String,
    pub applied_at: bson::DateTime,
}

/// `clients`, keyed by client id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub secret_digest: Option<Binary>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<auth_core::GrantType>,
    pub scopes: Vec<String>,
    pub first_party: bool,
    pub created_at: bson::DateTime,
}

impl From<&Client> for ClientDoc {
    fn from(client: &Client) -> Self {
        Self {
            id: client.id.clone(),
            name: client.name.clone(),
            secret_digest: client.secret_digest.as_ref().map(|d| binary(d)),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            grant_types: client.grant_types.clone(),
            scopes: client.scopes.clone(),
            first_party: client.first_party,
            created_at: bson_time(client.created_at),
        }
    }
}

impl TryFrom<ClientDoc> for Client {
    type Error = StoreError;

    fn try_from(doc: ClientDoc) -> Result<Self, StoreError> {
        Ok(Client {
            id: doc.id,
            name: doc.name,
            secret_digest: doc.secret_digest.map(digest).transpose()?,
            redirect_uris: doc.redirect_uris,
            post_logout_redirect_uris: doc.post_logout_redirect_uris,
            grant_types: doc.grant_types,
            scopes: doc.scopes,
            first_party: doc.first_party,
            created_at: time(doc.created_at),
        })
    }
}

/// `authorization_requests`; `params` is the checked request as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RequestDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    pub params: String,
    pub created_at: bson::DateTime,
    pub expires_at: bson::DateTime,
}

impl RequestDoc {
    pub fn new(request: &PendingAuthorization) -> Result<Self, StoreError> {
        Ok(Self {
            id: bson_uuid(request.id),
            params: to_stored_json(&request.params)?,
            created_at: bson_time(request.created_at),
            expires_at: bson_time(request.expires_at),
        })
    }
}

impl TryFrom<RequestDoc> for PendingAuthorization {
    type Error = StoreError;

    fn try_from(doc: RequestDoc) -> Result<Self, StoreError> {
        Ok(PendingAuthorization {
            id: uuid(doc.id),
            params: from_stored_json(&doc.params)?,
            created_at: time(doc.created_at),
            expires_at: time(doc.expires_at),
        })
    }
}

/// `authorization_codes`, keyed by the code's digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CodeDoc {
    #[serde(rename = "_id")]
    pub digest: Binary,
    pub client_id: String,
    pub session_id: bson::Uuid,
    pub grant_data: String,
    pub created_at: bson::DateTime,
    pub expires_at: bson::DateTime,
    pub used_at: Option<bson::DateTime>,
}

impl CodeDoc {
    pub fn new(code: &AuthorizationCode) -> Result<Self, StoreError> {
        Ok(Self {
            digest: binary(&code.digest),
            client_id: code.client_id.clone(),
            session_id: bson_uuid(code.session_id),
            grant_data: to_stored_json(&code.grant)?,
            created_at: bson_time(code.created_at),
            expires_at: bson_time(code.expires_at),
            used_at: None,
        })
    }
}

impl TryFrom<CodeDoc> for AuthorizationCode {
    type Error = StoreError;

    fn try_from(doc: CodeDoc) -> Result<Self, StoreError> {
        Ok(AuthorizationCode {
            digest: digest(doc.digest)?,
            client_id: doc.client_id,
            session_id: uuid(doc.session_id),
            grant: from_stored_json(&doc.grant_data)?,
            created_at: time(doc.created_at),
            expires_at: time(doc.expires_at),
        })
    }
}

/// `browser_sessions`, keyed by the cookie's digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BrowserSessionDoc {
    #[serde(rename = "_id")]
    pub digest: Binary,
    pub id: bson::Uuid,
    pub user_id: bson::Uuid,
    pub auth_time: bson::DateTime,
    pub created_at: bson::DateTime,
    pub idle_expires_at: bson::DateTime,
    pub expires_at: bson::DateTime,
    /// Absent on sessions from before second factors: a password.
    #[serde(default = "password_amr")]
    pub amr: String,
}

fn password_amr() -> String {
    "pwd".to_owned()
}

impl From<&BrowserSession> for BrowserSessionDoc {
    fn from(session: &BrowserSession) -> Self {
        Self {
            digest: binary(&session.digest),
            id: bson_uuid(session.id),
            user_id: bson_uuid(session.user_id),
            auth_time: bson_time(session.auth_time),
            created_at: bson_time(session.created_at),
            idle_expires_at: bson_time(session.idle_expires_at),
            expires_at: bson_time(session.expires_at),
            amr: session.amr.join(" "),
        }
    }
}

impl TryFrom<BrowserSessionDoc> for BrowserSession {
    type Error = StoreError;

    fn try_from(doc: BrowserSessionDoc) -> Result<Self, StoreError> {
        Ok(BrowserSession {
            id: uuid(doc.id),
            digest: digest(doc.digest)?,
            user_id: uuid(doc.user_id),
            auth_time: time(doc.auth_time),
            created_at: time(doc.created_at),
            idle_expires_at: time(doc.idle_expires_at),
            expires_at: time(doc.expires_at),
            amr: doc
                .amr
                .split(' ')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `factors`, keyed by the factor's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FactorDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    pub user_id: bson::Uuid,
    pub kind: String,
    pub name: String,
    pub data: String,
    pub credential_id: Option<String>,
    /// See [`FACTOR_UNIQUE_INDEX`].
    pub unique_key: String,
    pub last_step: i64,
    pub created_at: bson::DateTime,
    pub last_used_at: Option<bson::DateTime>,
}

impl From<&Factor> for FactorDoc {
    fn from(factor: &Factor) -> Self {
        let unique_key = match &factor.credential_id {
            Some(credential) => format!("passkey:{credential}"),
            None if factor.kind == FactorKind::Totp => format!("totp:{}", factor.user_id),
            None => format!("factor:{}", factor.id),
        };
        Self {
            id: bson_uuid(factor.id),
            user_id: bson_uuid(factor.user_id),
            kind: factor.kind.as_str().to_owned(),
            name: factor.name.clone(),
            data: factor.data.clone(),
            credential_id: factor.credential_id.clone(),
            unique_key,
            last_step: factor.last_step,
            created_at: bson_time(factor.created_at),
            last_used_at: factor.last_used_at.map(bson_time),
        }
    }
}

impl TryFrom<FactorDoc> for Factor {
    type Error = StoreError;

    fn try_from(doc: FactorDoc) -> Result<Self, StoreError> {
        Ok(Factor {
            id: uuid(doc.id),
            user_id: uuid(doc.user_id),
            kind: FactorKind::parse(&doc.kind)
                .ok_or_else(|| StoreError::Other(format!("unknown factor kind {}", doc.kind)))?,
            name: doc.name,
            data: doc.data,
            credential_id: doc.credential_id,
            last_step: doc.last_step,
            created_at: time(doc.created_at),
            last_used_at: doc.last_used_at.map(time),
        })
    }
}

/// `recovery_codes`, keyed by `"<user id>/<digest, hex>"` so spending one is
/// a single conditional delete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecoveryCodeDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub user_id: bson::Uuid,
    pub created_at: bson::DateTime,
}

pub(crate) fn recovery_code_key(user_id: Uuid, digest: &TokenDigest) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{user_id}/{hex}")
}

/// `ceremonies`, keyed by the digest of the token that names one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CeremonyDoc {
    #[serde(rename = "_id")]
    pub digest: Binary,
    pub kind: String,
    pub user_id: Option<bson::Uuid>,
    pub data: String,
    pub expires_at: bson::DateTime,
}

impl From<&Ceremony> for CeremonyDoc {
    fn from(ceremony: &Ceremony) -> Self {
        Self {
            digest: binary(&ceremony.digest),
            kind: ceremony.kind.as_str().to_owned(),
            user_id: ceremony.user_id.map(bson_uuid),
            data: ceremony.data.clone(),
            expires_at: bson_time(ceremony.expires_at),
        }
    }
}

impl TryFrom<CeremonyDoc> for Ceremony {
    type Error = StoreError;

    fn try_from(doc: CeremonyDoc) -> Result<Self, StoreError> {
        Ok(Ceremony {
            digest: digest(doc.digest)?,
            kind: CeremonyKind::parse(&doc.kind)
                .ok_or_else(|| StoreError::Other(format!("unknown ceremony kind {}", doc.kind)))?,
            user_id: doc.user_id.map(uuid),
            data: doc.data,
            expires_at: time(doc.expires_at),
        })
    }
}

/// `consents`, keyed by `"<user id>/<client id>"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsentDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub user_id: bson::Uuid,
    pub client_id: String,
    pub scope: String,
    pub granted_at: bson::DateTime,
}

impl From<ConsentDoc> for Consent {
    fn from(doc: ConsentDoc) -> Self {
        Consent {
            client_id: doc.client_id,
            scope: doc.scope,
            granted_at: time(doc.granted_at),
        }
    }
}

pub(crate) fn consent_key(user_id: Uuid, client_id: &str) -> String {
    format!("{user_id}/{client_id}")
}

/// `email_links`, keyed by the token's digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LinkDoc {
    #[serde(rename = "_id")]
    pub digest: Binary,
    pub purpose: String,
    pub user_id: bson::Uuid,
    pub email: String,
    pub created_at: bson::DateTime,
    pub expires_at: bson::DateTime,
    pub used_at: Option<bson::DateTime>,
}

impl From<&EmailLink> for LinkDoc {
    fn from(link: &EmailLink) -> Self {
        Self {
            digest: binary(&link.digest),
            purpose: link.purpose.as_str().to_owned(),
            user_id: bson_uuid(link.user_id),
            email: link.email.clone(),
            created_at: bson_time(link.created_at),
            expires_at: bson_time(link.expires_at),
            used_at: link.used_at.map(bson_time),
        }
    }
}

impl TryFrom<LinkDoc> for EmailLink {
    type Error = StoreError;

    fn try_from(doc: LinkDoc) -> Result<Self, StoreError> {
        Ok(EmailLink {
            digest: digest(doc.digest)?,
            purpose: LinkPurpose::parse(&doc.purpose).ok_or_else(|| {
                StoreError::Other(format!("unknown link purpose {}", doc.purpose))
            })?,
            user_id: uuid(doc.user_id),
            email: doc.email,
            created_at: time(doc.created_at),
            expires_at: time(doc.expires_at),
            used_at: doc.used_at.map(time),
        })
    }
}

/// `mail_outbox`: a message and its delivery state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboxDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: bson::DateTime,
    pub due_at: bson::DateTime,
    pub attempts: i64,
    pub claim: Option<bson::Uuid>,
    pub held_until: Option<bson::DateTime>,
    pub finished_at: Option<bson::DateTime>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
}

impl From<&OutgoingMail> for OutboxDoc {
    fn from(mail: &OutgoingMail) -> Self {
        Self {
            id: bson_uuid(mail.id),
            recipient: mail.to.clone(),
            subject: mail.subject.clone(),
            text_body: mail.text.clone(),
            html_body: mail.html.clone(),
            created_at: bson_time(mail.created_at),
            due_at: bson_time(mail.created_at),
            attempts: 0,
            claim: None,
            held_until: None,
            finished_at: None,
            outcome: None,
            last_error: None,
        }
    }
}

impl OutboxDoc {
    pub fn into_queued(self, claim: Uuid) -> QueuedMail {
        QueuedMail {
            mail: OutgoingMail {
                id: uuid(self.id),
                to: self.recipient,
                subject: self.subject,
                text: self.text_body,
                html: self.html_body,
                created_at: time(self.created_at),
            },
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            claim,
        }
    }
}

/// `audit_log`, keyed by the record's UUIDv7 (time order, the cursor).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AuditDoc {
    #[serde(rename = "_id")]
    pub id: bson::Uuid,
    pub time: bson::DateTime,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub client_address: Option<String>,
    pub request_id: Option<String>,
}

impl From<&auth_core::AuditEvent> for AuditDoc {
    fn from(event: &auth_core::AuditEvent) -> Self {
        Self {
            id: bson_uuid(event.id),
            time: bson_time(event.time),
            actor: event.actor.clone(),
            action: event.action.clone(),
            target: event.target.clone(),
            outcome: event.outcome.clone(),
            client_address: event.client_address.clone(),
            request_id: event.request_id.clone(),
        }
    }
}

impl From<AuditDoc> for auth_core::AuditEvent {
    fn from(doc: AuditDoc) -> Self {
        auth_core::AuditEvent {
            id: uuid(doc.id),
            time: time(doc.time),
            actor: doc.actor,
            action: doc.action,
            target: doc.target,
            outcome: doc.outcome,
            client_address: doc.client_address,
            request_id: doc.request_id,
        }
    }
}
