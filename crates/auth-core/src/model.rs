//! Records the stores keep.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::validation::{Email, Username};

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
            .finish_non_exhaustive()
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
        let now = Utc::now();
        // Stores keep microseconds at most; truncate so what we return equals what we read back.
        let created_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
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
