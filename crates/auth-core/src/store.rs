//! Storage ports. Each adapter crate implements these; the conformance suite
//! (`store-conformance`) pins down the behaviour they must share.
//!
//! Uniqueness is the store's job, enforced atomically (unique index or one
//! lock), never by a read-then-insert in the service.

use std::future::Future;

use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::model::{
    Consumed, NewRefreshToken, NewUser, RefreshTokenRecord, Session, TokenDigest, User,
};
use crate::throttle::ThrottleState;

/// The fields that must be unique across accounts, compared case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Username,
    Email,
}

impl UniqueField {
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueField::Username => "username",
            UniqueField::Email => "email",
        }
    }
}

impl std::fmt::Display for UniqueField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one error type every adapter returns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint rejected the write.
    #[error("{0} already exists")]
    Conflict(UniqueField),
    /// The record to change does not exist.
    #[error("not found")]
    NotFound,
    /// The database could not be reached or timed out; worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, a corrupt row). Logged, never shown to clients.
    #[error("store error: {0}")]
    Other(String),
}

/// Accounts.
///
/// Lookups take the *key* form of a username or email
/// ([`Username::key`](crate::Username::key)): NFKC-normalised and lowercased,
/// so the case-insensitive comparison is defined once, in `auth-core`.
pub trait UserStore: Send + Sync {
    /// Inserts a new account. Fails with [`StoreError::Conflict`] naming the
    /// field when the username key or email key is taken, atomically.
    fn insert_user(&self, user: &NewUser) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn find_user_by_id(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    fn find_user_by_username(
        &self,
        username_key: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    fn find_user_by_email(
        &self,
        email_key: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Replaces the password hash (password change, rehash on login).
    /// [`StoreError::NotFound`] when there is no such user.
    fn set_password_hash(
        &self,
        id: Uuid,
        password_hash: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Enables or disables an account. [`StoreError::NotFound`] when absent.
    fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes an account; `false` when there was none.
    fn delete_user(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Accounts ordered by username key, `limit` of them after skipping `offset`.
    fn list_users(
        &self,
        offset: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;
}

/// Sessions and their refresh tokens.
///
/// Single use is the store's job: [`consume_refresh_token`] marks a token
/// used and stores its successor in one atomic step (a conditional update in
/// a transaction, or one lock), so of N concurrent uses exactly one rotates.
///
/// [`consume_refresh_token`]: SessionStore::consume_refresh_token
pub trait SessionStore: Send + Sync {
    /// Stores a new session with its first refresh token, atomically.
    fn create_session(
        &self,
        session: &Session,
        first_token: &NewRefreshToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session if it is active at `now` (not revoked, not expired), with
    /// its user, in one lookup: this runs on every authenticated request.
    fn find_active_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<(Session, User)>, StoreError>> + Send;

    /// Presents the refresh token with digest `digest`. If it is unused, not
    /// expired and its session active, marks it used at `now`, records
    /// `successor` (and its sealed copy) on it, stores `successor` in the
    /// same session, slides the session's expiry to the successor's, and
    /// returns [`Consumed::Rotated`]. If it was already used, changes
    /// nothing and returns [`Consumed::AlreadyUsed`]. Otherwise
    /// [`Consumed::Invalid`].
    fn consume_refresh_token(
        &self,
        digest: &TokenDigest,
        successor: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Consumed, StoreError>> + Send;

    /// A refresh token by digest, with its session and user, whatever their state.
    fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<(RefreshTokenRecord, Session, User)>, StoreError>> + Send;

    /// Ends a session (and so every token of it). `false` when it was
    /// unknown or already revoked.
    fn revoke_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends every active session of a user except `keep`; returns how many.
    fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes sessions that expired or were revoked before `now`, with
    /// their tokens, and refresh tokens past their expiry. Returns how many
    /// sessions went. Used tokens of live sessions stay: reuse detection
    /// needs them.
    fn purge_expired(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Login throttling state, shared by every replica using the store.
pub trait ThrottleStore: Send + Sync {
    /// The state of `key`, if any.
    fn throttle_state(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ThrottleState>, StoreError>> + Send;

    /// Replaces the state of `key` with `update(current)`, atomically: of
    /// concurrent updates none is lost. Returns the new state. `update` must
    /// be a pure function of the state: an optimistic store (MongoDB) calls
    /// it again when another writer got in first.
    fn update_throttle<F>(
        &self,
        key: &str,
        update: F,
    ) -> impl Future<Output = Result<ThrottleState, StoreError>> + Send
    where
        F: Fn(Option<ThrottleState>) -> ThrottleState + Send + Sync;

    /// Forgets `key` (after a successful login).
    fn clear_throttle(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets every key whose window started before `stale_before` and
    /// that is not locked at `now`; returns how many. Failed logins for
    /// names that do not exist are counted too, so without this the state
    /// would grow with every name an attacker tries.
    fn purge_throttle(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Everything a backend provides.
pub trait Store: UserStore + SessionStore + ThrottleStore + Send + Sync + 'static {
    /// A cheap round trip proving the store answers (readiness probes).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A short name for logs and test output (`memory`, `sqlite`, ...).
    fn backend_name(&self) -> &'static str;

    /// Applies pending schema migrations; returns what it applied
    /// (`"<version> <description>"`), empty when up to date. Safe to run
    /// twice and from two processes at once.
    fn migrate(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Migrations this build knows that the database has not applied yet.
    fn pending_migrations(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}
