//! Storage ports. Each adapter crate implements these; the conformance suite
//! (`store-conformance`) pins down the behaviour they must share.
//!
//! Uniqueness is the store's job, enforced atomically (unique index or one
//! lock), never by a read-then-insert in the service.
//!
//! Every port is declared through [`port!`], which also implements it for
//! [`Observed`], the decorator that reports each call's duration and
//! outcome. A new port method is therefore written once here, once per
//! adapter, and once as a conformance case — never as forwarding code.

use std::future::Future;
use std::time::{Duration, Instant};

use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::audit::{AuditEvent, AuditQuery};
use crate::authorize::{
    AuthorizationCode, BrowserSession, CodeRedemption, Consent, PendingAuthorization,
};
use crate::client::Client;
use crate::factors::{Ceremony, Factor};
use crate::lifecycle::{AccountChange, EmailLink};
use crate::mail::{MailOutcome, OutgoingMail, QueuedMail};
use crate::model::{
    Consumed, NewRefreshToken, NewUser, RefreshTokenRecord, Session, TokenDigest, User, UserQuery,
    UserSummary,
};
use crate::secret::DatabaseUrl;
use crate::throttle::ThrottleState;

/// How an adapter connects: the same three settings for every networked
/// store (`storage.url`, `storage.max_connections`, `storage.acquire_timeout`).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The password inside stays out of `Debug` output.
    pub url: DatabaseUrl,
    /// Pool size.
    pub max_connections: u32,
    /// How long a call waits for a connection (or a server) before the
    /// store reports itself unavailable.
    pub acquire_timeout: Duration,
}

/// The fields that must be unique across accounts, compared case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Username,
    Email,
    /// A client id (`tessera client add`).
    ClientId,
    /// A second factor: the account's authenticator app, or a passkey's
    /// credential ID (registered once, to one account).
    Factor,
}

impl UniqueField {
    pub fn as_str(self) -> &'static str {
        match self {
            UniqueField::Username => "username",
            UniqueField::Email => "email",
            UniqueField::ClientId => "client_id",
            UniqueField::Factor => "factor",
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

/// A record's part kept as JSON text (a checked authorization request, what
/// a code is bound to, lists of a client): written and read the same way by
/// every store that keeps text.
pub fn to_stored_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(format!("encoding JSON: {e}")))
}

/// Reads what [`to_stored_json`] wrote; anything else is a corrupt record.
pub fn from_stored_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Other(format!("stored JSON: {e}")))
}

/// Declares a port trait whose methods are all async and return a
/// `Result`, and implements it for [`Observed`]: each call is forwarded and
/// reported to the observer under the method's name.
macro_rules! port {
    (
        $(#[$trait_meta:meta])*
        pub trait $trait:ident {
            $(
                $(#[$meta:meta])*
                fn $method:ident $(<$generic:ident: $bound:path>)? (
                    &self $(, $arg:ident: $ty:ty)* $(,)?
                ) -> $ret:ty;
            )+
        }
    ) => {
        $(#[$trait_meta])*
        pub trait $trait: Send + Sync {
            $(
                $(#[$meta])*
                fn $method $(<$generic: $bound>)? (
                    &self $(, $arg: $ty)*
                ) -> impl Future<Output = $ret> + Send;
            )+
        }

        impl<S: $trait, O: StoreObserver> $trait for Observed<S, O> {
            $(
                async fn $method $(<$generic: $bound>)? (&self $(, $arg: $ty)*) -> $ret {
                    let started = Instant::now();
                    let result = self.inner.$method($($arg),*).await;
                    self.observer
                        .store_call(stringify!($method), started.elapsed(), result.is_ok());
                    result
                }
            )+
        }
    };
}

/// Told about every store call made through [`Observed`] (metrics, traces).
pub trait StoreObserver: Send + Sync + 'static {
    fn store_call(&self, operation: &'static str, elapsed: Duration, ok: bool);
}

/// A store whose every port call is reported to `observer`, so every
/// backend is measured the same way without touching the adapters.
#[derive(Debug, Clone)]
pub struct Observed<S, O> {
    pub inner: S,
    pub observer: O,
}

impl<S, O> Observed<S, O> {
    pub fn new(inner: S, observer: O) -> Self {
        Self { inner, observer }
    }
}

/// How a throttle state is advanced: a pure function of the current state
/// (an optimistic store, MongoDB, calls it again when another writer got in
/// first).
pub trait ThrottleUpdate: Fn(Option<ThrottleState>) -> ThrottleState + Send + Sync {}

impl<F: Fn(Option<ThrottleState>) -> ThrottleState + Send + Sync> ThrottleUpdate for F {}

port! {
    /// Accounts.
    ///
    /// Lookups take the *key* form of a username or email
    /// ([`Username::key`](crate::Username::key)): NFKC-normalised and lowercased,
    /// so the case-insensitive comparison is defined once, in `auth-core`.
    pub trait UserStore {
        /// Inserts a new account. Fails with [`StoreError::Conflict`] naming the
        /// field when the username key or email key is taken, atomically.
        fn insert_user(&self, user: &NewUser) -> Result<(), StoreError>;

        fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;

        fn find_user_by_username(&self, username_key: &str) -> Result<Option<User>, StoreError>;

        fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError>;

        /// Replaces the password hash (password change, rehash on login).
        /// [`StoreError::NotFound`] when there is no such user.
        fn set_password_hash(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError>;

        /// Enables or disables an account. [`StoreError::NotFound`] when absent.
        fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError>;

        /// Deletes an account; `false` when there was none.
        fn delete_user(&self, id: Uuid) -> Result<bool, StoreError>;

        /// Replaces an account's address and whether it is verified.
        /// [`StoreError::NotFound`] when absent; [`StoreError::Conflict`]
        /// with [`UniqueField::Email`] when another account has it.
        fn update_email(
            &self,
            id: Uuid,
            email: &str,
            email_key: &str,
            verified: bool,
        ) -> Result<(), StoreError>;

        /// One page of accounts in username-key order ([`UserQuery`]): a
        /// single query, whatever the page size, which leaves the password
        /// hash in the store.
        fn search_users(&self, query: &UserQuery) -> Result<Vec<UserSummary>, StoreError>;
    }
}

port! {
    /// Sessions and their refresh tokens.
    ///
    /// Single use is the store's job: [`consume_refresh_token`] marks a token
    /// used and stores its successor in one atomic step (a conditional update in
    /// a transaction, or one lock), so of N concurrent uses exactly one rotates.
    ///
    /// [`consume_refresh_token`]: SessionStore::consume_refresh_token
    pub trait SessionStore {
        /// Stores a new session with its first refresh token, atomically.
        fn create_session(
            &self,
            session: &Session,
            first_token: &NewRefreshToken,
        ) -> Result<(), StoreError>;

        /// The session if it is active at `now` (not revoked, not expired), with
        /// its user, in one lookup: this runs on every authenticated request.
        fn find_active_session(
            &self,
            id: Uuid,
            now: DateTime<Utc>,
        ) -> Result<Option<(Session, User)>, StoreError>;

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
        ) -> Result<Consumed, StoreError>;

        /// A refresh token by digest, with its session and user, whatever their state.
        fn find_refresh_token(
            &self,
            digest: &TokenDigest,
        ) -> Result<Option<(RefreshTokenRecord, Session, User)>, StoreError>;

        /// Ends a session (and so every token of it). `false` when it was
        /// unknown or already revoked.
        fn revoke_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError>;

        /// Ends every active session of a user except `keep`; returns how many.
        fn revoke_user_sessions(
            &self,
            user_id: Uuid,
            keep: Option<Uuid>,
            now: DateTime<Utc>,
        ) -> Result<u64, StoreError>;

        /// Deletes sessions that expired or were revoked before `now`, with
        /// their tokens, and refresh tokens past their expiry. Returns how many
        /// sessions went. Used tokens of live sessions stay: reuse detection
        /// needs them.
        fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    }
}

port! {
    /// Login throttling state, shared by every replica using the store.
    pub trait ThrottleStore {
        /// The state of `key`, if any.
        fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError>;

        /// Replaces the state of `key` with `update(current)`, atomically: of
        /// concurrent updates none is lost. Returns the new state.
        fn update_throttle<F: ThrottleUpdate>(
            &self,
            key: &str,
            update: F,
        ) -> Result<ThrottleState, StoreError>;

        /// Forgets `key` (after a successful login).
        fn clear_throttle(&self, key: &str) -> Result<(), StoreError>;

        /// Forgets every key whose window started before `stale_before` and
        /// that is not locked at `now`; returns how many. Failed logins for
        /// names that do not exist are counted too, so without this the state
        /// would grow with every name an attacker tries.
        fn purge_throttle(
            &self,
            stale_before: DateTime<Utc>,
            now: DateTime<Utc>,
        ) -> Result<u64, StoreError>;
    }
}

port! {
    /// Clients registered through the CLI. Clients from configuration never
    /// reach the store; the service looks there first.
    pub trait ClientStore {
        /// Stores a new client; [`StoreError::Conflict`] with
        /// [`UniqueField::ClientId`] when the id is taken, atomically.
        fn insert_client(&self, client: &Client) -> Result<(), StoreError>;

        fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError>;

        /// Every stored client, ordered by id.
        fn list_clients(&self) -> Result<Vec<Client>, StoreError>;

        /// Replaces every field of the client with `client.id` except its
        /// creation time. [`StoreError::NotFound`] when there is none.
        fn update_client(&self, client: &Client) -> Result<(), StoreError>;

        /// Deletes a client; `false` when there was none. Sessions it
        /// started stay until they expire or are revoked.
        fn delete_client(&self, id: &str) -> Result<bool, StoreError>;
    }
}

port! {
    /// Browser flows: pending authorization requests, authorization codes,
    /// sign-in sessions and remembered consent. All of it is here, not in a
    /// process, so any replica continues any flow.
    pub trait FlowStore {
        fn insert_authorization_request(
            &self,
            request: &PendingAuthorization,
        ) -> Result<(), StoreError>;

        /// The pending request if it has not expired at `now`.
        fn find_authorization_request(
            &self,
            id: Uuid,
            now: DateTime<Utc>,
        ) -> Result<Option<PendingAuthorization>, StoreError>;

        /// Forgets a pending request (it was answered); `false` when absent.
        fn delete_authorization_request(&self, id: Uuid) -> Result<bool, StoreError>;

        fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;

        /// Presents the code with digest `digest`: if it is unused and not
        /// expired at `now`, marks it used and returns
        /// [`CodeRedemption::Redeemed`] — atomically, so of N concurrent
        /// presentations exactly one wins. A used code (expired or not)
        /// changes nothing and is [`CodeRedemption::AlreadyUsed`].
        fn redeem_authorization_code(
            &self,
            digest: &TokenDigest,
            now: DateTime<Utc>,
        ) -> Result<CodeRedemption, StoreError>;

        fn create_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError>;

        /// The browser session with digest `digest` and its user, if it is
        /// active at `now`; its idle expiry is moved to `idle_until` in the
        /// same step.
        fn touch_browser_session(
            &self,
            digest: &TokenDigest,
            now: DateTime<Utc>,
            idle_until: DateTime<Utc>,
        ) -> Result<Option<(BrowserSession, User)>, StoreError>;

        /// Ends a browser session (sign-out); `false` when there was none.
        fn end_browser_session(&self, digest: &TokenDigest) -> Result<bool, StoreError>;

        /// RP-initiated logout: deletes the browser session `id` (if it is
        /// still there) and revokes, at `now`, every active session it
        /// started (`Session::browser_session_id`). Returns how many
        /// sessions were revoked.
        fn sign_out_browser(&self, id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError>;

        /// The scopes a user granted a client (normalised), if any.
        fn find_consent(&self, user_id: Uuid, client_id: &str)
            -> Result<Option<String>, StoreError>;

        /// Records (replaces) the scopes a user granted a client.
        fn save_consent(
            &self,
            user_id: Uuid,
            client_id: &str,
            scope: &str,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError>;

        /// Every client `user_id` has allowed, by client id.
        fn list_consents(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError>;

        /// Withdraws what `user_id` allowed `client_id` and revokes, at
        /// `now`, the user's active sessions of that client, so the client
        /// keeps no access it was given (a new authorization asks again).
        /// `None`, changing nothing, when no consent was remembered;
        /// otherwise how many sessions were revoked.
        fn revoke_consent(
            &self,
            user_id: Uuid,
            client_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Option<u64>, StoreError>;

        /// Deletes pending requests, codes and browser sessions that expired
        /// before `now`; returns how many records went.
        fn purge_flows(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    }
}

port! {
    /// The outbox and the one-time links mail carries.
    ///
    /// Every method that writes a message writes it together with the
    /// change that causes it: in one transaction on SQL, under one lock in
    /// memory; on MongoDB (no multi-document transactions) the change
    /// first and the message last, so a crash between them loses a message
    /// but never sends one about something that did not happen.
    pub trait MailStore {
        /// Queues a message (due at once).
        fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), StoreError>;

        /// Claims up to `limit` messages that are due at `now` and not held
        /// by a live claim: each gets `claim`, is held until `lease_until`,
        /// and has its attempt count raised — atomically, so two senders
        /// never claim one message. Oldest first.
        fn claim_mail(
            &self,
            claim: Uuid,
            now: DateTime<Utc>,
            lease_until: DateTime<Utc>,
            limit: u32,
        ) -> Result<Vec<QueuedMail>, StoreError>;

        /// Records the outcome of an attempt, if `claim` still holds the
        /// message (`false` otherwise: another sender has it). Sent and
        /// given-up messages keep no subject or parts (they held links).
        fn finish_mail(
            &self,
            id: Uuid,
            claim: Uuid,
            outcome: &MailOutcome,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError>;

        /// Registration: inserts the account (conflicts as
        /// [`UserStore::insert_user`]) with its verification link and message.
        fn insert_user_with_link(
            &self,
            user: &NewUser,
            link: &EmailLink,
            mail: &OutgoingMail,
        ) -> Result<(), StoreError>;

        /// Stores a link and queues the message that carries it.
        fn create_email_link(&self, link: &EmailLink, mail: &OutgoingMail) -> Result<(), StoreError>;

        /// The link with digest `digest`, used or not, expired or not.
        fn find_email_link(&self, digest: &TokenDigest) -> Result<Option<EmailLink>, StoreError>;

        /// Spends a link: if it is unused and unexpired at `now`, marks it
        /// used, applies `change` to its user and queues `mail` — all or
        /// nothing; `false` when the link was not spendable (of concurrent
        /// calls exactly one gets `true`). A reset also revokes every session
        /// of the user and deletes their browser sessions. An email change to
        /// an address taken meanwhile is [`StoreError::Conflict`] and changes
        /// nothing.
        fn use_email_link(
            &self,
            digest: &TokenDigest,
            now: DateTime<Utc>,
            change: &AccountChange,
            mail: Option<&OutgoingMail>,
        ) -> Result<bool, StoreError>;

        /// A password change: replaces the hash, revokes every active session
        /// of the user but `keep`, deletes their browser sessions, and
        /// queues `notice` (if any). Returns how many sessions were revoked.
        /// [`StoreError::NotFound`] when there is no such user.
        fn replace_password(
            &self,
            user_id: Uuid,
            password_hash: &str,
            keep: Option<Uuid>,
            now: DateTime<Utc>,
            notice: Option<&OutgoingMail>,
        ) -> Result<u64, StoreError>;

        /// Deletes messages sent or given up before `before`, and links that
        /// were used or expired before it; returns how many records went.
        fn purge_mail(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    }
}

port! {
    /// Second factors, recovery codes, and the ceremony records of
    /// multi-step sign-ins and enrolments.
    pub trait FactorStore {
        /// Adds a factor. [`StoreError::Conflict`]`(Factor)` when the account
        /// already has an authenticator app (one per account) or the
        /// passkey's credential ID is registered already (to anyone).
        fn add_factor(&self, factor: &Factor) -> Result<(), StoreError>;

        /// The user's factors, oldest first.
        fn list_factors(&self, user_id: Uuid) -> Result<Vec<Factor>, StoreError>;

        /// The passkey with this credential ID, whoever's it is.
        fn find_passkey(&self, credential_id: &str) -> Result<Option<Factor>, StoreError>;

        /// Accepts TOTP time step `step` for a factor: if it is later than the
        /// last step accepted, records it (and `now` as last use) and returns
        /// `true`; otherwise changes nothing and returns `false`. Atomic: of
        /// concurrent calls with one step, exactly one gets `true`.
        fn advance_totp_step(
            &self,
            factor_id: Uuid,
            step: i64,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError>;

        /// Records a passkey's use: its updated credential (signature
        /// counter) and `now`. `false` when the factor is gone.
        fn record_passkey_use(
            &self,
            factor_id: Uuid,
            data: &str,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError>;

        /// Removes one of the user's factors (`false`: no such factor of
        /// theirs). When none remain, their recovery codes go too.
        fn remove_factor(&self, user_id: Uuid, factor_id: Uuid) -> Result<bool, StoreError>;

        /// Replaces the user's recovery codes with these digests.
        fn replace_recovery_codes(
            &self,
            user_id: Uuid,
            digests: &[TokenDigest],
            now: DateTime<Utc>,
        ) -> Result<(), StoreError>;

        /// Spends a recovery code: `true` and gone if the user had it (of
        /// concurrent calls exactly one gets `true`).
        fn use_recovery_code(&self, user_id: Uuid, digest: &TokenDigest) -> Result<bool, StoreError>;

        /// How many unused recovery codes the user has.
        fn count_recovery_codes(&self, user_id: Uuid) -> Result<u64, StoreError>;

        /// Removes every factor and recovery code of the user and ends every
        /// session of theirs (API sessions revoked, browser sessions
        /// deleted); returns how many factors went.
        fn reset_factors(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError>;

        /// Stores a ceremony record.
        fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError>;

        /// The unexpired ceremony with this digest, left in place.
        fn find_ceremony(
            &self,
            digest: &TokenDigest,
            now: DateTime<Utc>,
        ) -> Result<Option<Ceremony>, StoreError>;

        /// Removes and returns the unexpired ceremony with this digest: of
        /// concurrent calls exactly one gets it (a challenge answers once).
        fn take_ceremony(
            &self,
            digest: &TokenDigest,
            now: DateTime<Utc>,
        ) -> Result<Option<Ceremony>, StoreError>;

        /// The user's active API sessions and browser sessions at `now`,
        /// newest first.
        fn list_user_sessions(
            &self,
            user_id: Uuid,
            now: DateTime<Utc>,
        ) -> Result<(Vec<Session>, Vec<BrowserSession>), StoreError>;
    }
}

port! {
    /// The audit log: appended to, read, and trimmed by retention only.
    pub trait AuditStore {
        /// Appends one record (ids are unique; a record is never changed).
        fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

        /// Records matching `query`, oldest (smallest id) first, at most
        /// `query.limit` — one store call per page.
        fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;

        /// Deletes records older than `before` (retention); how many went.
        fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    }
}

port! {
    /// The store as a whole: reachability and schema.
    pub trait Lifecycle {
        /// A cheap round trip proving the store answers (readiness probes).
        fn ping(&self) -> Result<(), StoreError>;

        /// Applies pending schema migrations; returns what it applied
        /// (`"<version> <description>"`), empty when up to date. Safe to run
        /// twice and from two processes at once.
        fn migrate(&self) -> Result<Vec<String>, StoreError>;

        /// Migrations this build knows that the database has not applied yet.
        fn pending_migrations(&self) -> Result<Vec<String>, StoreError>;
    }
}

/// Everything a backend provides.
pub trait Store:
    UserStore
    + SessionStore
    + ThrottleStore
    + ClientStore
    + FlowStore
    + MailStore
    + FactorStore
    + AuditStore
    + Lifecycle
    + 'static
{
    /// A short name for logs and test output (`memory`, `sqlite`, ...).
    fn backend_name(&self) -> &'static str;
}

impl<S: Store, O: StoreObserver> Store for Observed<S, O> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}
