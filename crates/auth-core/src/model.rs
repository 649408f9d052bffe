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
