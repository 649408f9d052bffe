//! A store decorator timing every call (`tessera_store_call_duration_seconds`),
//! so every backend is measured the same way without touching the adapters.

use std::time::Instant;

use auth_core::store::{SessionStore, Store, StoreError, ThrottleStore, UserStore};
use auth_core::{
    Consumed, NewRefreshToken, NewUser, RefreshTokenRecord, Session, ThrottleState, TokenDigest,
    User,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::metrics::record_store_call;

/// `S` with its calls timed.
#[derive(Debug, Clone)]
pub struct Instrumented<S>(pub S);

macro_rules! timed {
    ($operation:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        record_store_call($operation, started.elapsed(), result.is_ok());
        result
    }};
}

impl<S: UserStore> UserStore for Instrumented<S> {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        timed!("insert_user", self.0.insert_user(user))
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        timed!("find_user_by_id", self.0.find_user_by_id(id))
    }

    async fn find_user_by_username(&self, key: &str) -> Result<Option<User>, StoreError> {
        timed!("find_user_by_username", self.0.find_user_by_username(key))
    }

    async fn find_user_by_email(&self, key: &str) -> Result<Option<User>, StoreError> {
        timed!("find_user_by_email", self.0.find_user_by_email(key))
    }

    async fn set_password_hash(&self, id: Uuid, hash: &str) -> Result<(), StoreError> {
        timed!("set_password_hash", self.0.set_password_hash(id, hash))
    }

    async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        timed!("set_disabled", self.0.set_disabled(id, disabled))
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        timed!("delete_user", self.0.delete_user(id))
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<Vec<User>, StoreError> {
        timed!("list_users", self.0.list_users(offset, limit))
    }
}

impl<S: SessionStore> SessionStore for Instrumented<S> {
    async fn create_session(
        &self,
        session: &Session,
        first_token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        timed!(
            "create_session",
            self.0.create_session(session, first_token)
        )
    }

    async fn find_active_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>, StoreError> {
        timed!("find_active_session", self.0.find_active_session(id, now))
    }

    async fn consume_refresh_token(
        &self,
        digest: &TokenDigest,
        successor: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Consumed, StoreError> {
        timed!(
            "consume_refresh_token",
            self.0.consume_refresh_token(digest, successor, now)
        )
    }

    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(RefreshTokenRecord, Session, User)>, StoreError> {
        timed!("find_refresh_token", self.0.find_refresh_token(digest))
    }

    async fn revoke_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        timed!("revoke_session", self.0.revoke_session(id, now))
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        timed!(
            "revoke_user_sessions",
            self.0.revoke_user_sessions(user_id, keep, now)
        )
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        timed!("purge_expired", self.0.purge_expired(now))
    }
}

impl<S: ThrottleStore> ThrottleStore for Instrumented<S> {
    async fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        timed!("throttle_state", self.0.throttle_state(key))
    }

    async fn update_throttle<F>(&self, key: &str, update: F) -> Result<ThrottleState, StoreError>
    where
        F: Fn(Option<ThrottleState>) -> ThrottleState + Send + Sync,
    {
        timed!("update_throttle", self.0.update_throttle(key, update))
    }

    async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        timed!("clear_throttle", self.0.clear_throttle(key))
    }

    async fn purge_throttle(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        timed!("purge_throttle", self.0.purge_throttle(stale_before, now))
    }
}

impl<S: Store> Store for Instrumented<S> {
    async fn ping(&self) -> Result<(), StoreError> {
        timed!("ping", self.0.ping())
    }

    fn backend_name(&self) -> &'static str {
        self.0.backend_name()
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.0.migrate().await
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        self.0.pending_migrations().await
    }
}
