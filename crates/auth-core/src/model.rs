//! Records the stores keep.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::validation::{Email, Username};

/// `t` cut to the finest precision every store keeps: milliseconds, because
/// MongoDB dates hold no more. Times that must read back equal to what was
/// written (creation times) go through this.
pub fn to_stored_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// A stored account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    /// As registered (case kept, NFKC-normalised).
    pub username: String,
    pub email: String,
    /// PHC string (`$argon2id$v=19$m=...`).
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    /// The address was proved by a link sent to it.
    pub email_verified: bool,
}

impl std::fmt::Debug for User {
    // The hash stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("created_at", &self.created_at)
            .field("disabled", &self.disabled)
            .field("email_verified", &self.email_verified)
            .finish_non_exhaustive()
    }
}

/// An account as a listing shows it: a [`User`] without its password
/// hash, which no list needs (and which would be ~100 of the ~200 bytes
/// each listed row carries from the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    pub email_verified: bool,
}

impl From<User> for UserSummary {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            created_at: user.created_at,
            disabled: user.disabled,
            email_verified: user.email_verified,
        }
    }
}

/// An account about to be inserted. Built only from validated values, so a
/// store never sees unchecked input.
#[derive(Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub username: Username,
    pub email: Email,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl NewUser {
    /// A fresh record with a time-ordered id (UUIDv7 keeps index inserts local).
    pub fn new(username: Username, email: Email, password_hash: String) -> Self {
        let created_at = to_stored_precision(Utc::now());
        Self {
            id: Uuid::now_v7(),
            username,
            email,
            password_hash,
            created_at,
        }
    }

    /// The record as it reads back from a store.
    pub fn into_user(self) -> User {
        User {
            id: self.id,
            username: self.username.as_str().to_owned(),
            email: self.email.as_str().to_owned(),
            password_hash: self.password_hash,
            created_at: self.created_at,
            disabled: false,
            email_verified: false,
        }
    }
}

/// One login: a family of refresh tokens and the access tokens issued from
/// them (`sid`). Revoking it ends all of them at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    /// Slides forward to the newest refresh token's expiry on each rotation.
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The scope granted at login, kept for every refresh.
    pub scope: Option<String>,
    /// The client the session was granted to (every token of it says so,
    /// and only that client may refresh it);
    /// [`LEGACY_CLIENT_ID`](crate::client::LEGACY_CLIENT_ID) for v1's
    /// implicit public client.
    pub client_id: String,
    /// When the person proved who they are for this session (OIDC
    /// `auth_time`); unknown for sessions older than OpenID Connect support.
    pub auth_time: Option<DateTime<Utc>>,
    /// How they proved it (RFC 8176 `amr` values, space-separated: `pwd`).
    pub amr: Option<String>,
    /// The browser sign-in session that started this one: signing that
    /// browser out (`/logout`) ends this session too.
    pub browser_session_id: Option<Uuid>,
}

impl Session {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// SHA-256 of a refresh token: all a store ever keeps of one.
pub type TokenDigest = [u8; 32];

/// A refresh token about to be stored (as its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub digest: TokenDigest,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The successor sealed with a key only the *presented* token yields,
    /// kept so a replay inside the grace window can get the same successor
    /// back. `None` when the grace window is off (strict rotation).
    pub sealed: Option<Vec<u8>>,
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub digest: TokenDigest,
    pub session_id: Uuid,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// Set when used: the digest of the token that replaced it.
    pub successor_digest: Option<TokenDigest>,
    /// Set when used with a grace window: the sealed successor.
    pub successor_sealed: Option<Vec<u8>>,
}

/// What presenting a refresh token did, decided atomically by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// This call won: the token is now used and the successor stored.
    Rotated { session: Session, user: User },
    /// The token had been used before (by an earlier or a concurrent call).
    /// Nothing was changed; the caller decides between grace and revocation.
    AlreadyUsed {
        token: RefreshTokenRecord,
        session: Session,
        user: User,
    },
    /// Unknown, expired, or its session is over.
    Invalid,
}

impl Consumed {
    /// The outcome for a presented token that this call did not rotate,
    /// given what the store holds for it (the token, its session and user):
    /// [`Consumed::AlreadyUsed`] only for a used, unexpired token of an
    /// active session, otherwise [`Consumed::Invalid`]. Shared by the
    /// adapters so the rule is written once.
    pub fn not_rotated(
        found: Option<(RefreshTokenRecord, Session, User)>,
        now: DateTime<Utc>,
    ) -> Self {
        match found {
            Some((token, session, user))
                if token.used_at.is_some() && token.expires_at > now && session.is_active(now) =>
            {
                Consumed::AlreadyUsed {
                    token,
                    session,
                    user,
                }
            }
            _ => Consumed::Invalid,
        }
    }
}

/// One page of the user directory: accounts in username order (by their
/// case-folded key) after `after`, at most `limit`; with `prefix`, only
/// those whose username or email key starts with it. Keyset paging keeps
/// pages stable while accounts are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Already case-folded like the keys (see [`UserQuery::search`]).
    pub prefix: Option<String>,
    /// The previous page's last username key.
    pub after: Option<String>,
    pub limit: u32,
}

impl UserQuery {
    /// A query for what someone typed: folded the way keys are.
    pub fn search(typed: Option<&str>, after: Option<String>, limit: u32) -> Self {
        use unicode_normalization::UnicodeNormalization;
        let prefix = typed
            .map(|t| t.trim().nfkc().collect::<String>().to_lowercase())
            .filter(|t| !t.is_empty());
        Self {
            prefix,
            after,
            limit,
        }
    }

    /// Whether an account with these keys answers the query (the memory
    /// store's filter and the reference for the others).
    pub fn matches(&self, username_key: &str, email_key: &str) -> bool {
        self.after
            .as_deref()
            .is_none_or(|after| username_key > after)
            && self
                .prefix
                .as_deref()
                .is_none_or(|p| username_key.starts_with(p) || email_key.starts_with(p))
    }
}
