//! The PostgreSQL store, for production and for running several Tessera
//! processes over one database.

use std::time::Duration;

use auth_core::store::{SessionStore, Store, StoreError, ThrottleStore, UniqueField, UserStore};
use auth_core::{
    Consumed, NewRefreshToken, NewUser, RefreshTokenRecord, Session, ThrottleState, TokenDigest,
    User,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// Advisory-lock key serialising whole migration runs ("tessera" in ASCII).
const MIGRATION_REPORT_LOCK: i64 = 0x0074_6573_7365_7261;
use store_sql::{
    already_used_or_invalid, as_sql_int, pending_migrations, require_found, SessionUserRow,
    ThrottleRow, TokenSessionUserRow, UserRow, JOINED_USER_COLUMNS, SESSION_COLUMNS,
    THROTTLE_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS,
};
use uuid::Uuid;

#[cfg(feature = "test-support")]
pub mod test_support;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection settings.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `postgres://user@host:5432/database`
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (or a new one) before
    /// the store reports itself unavailable.
    pub acquire_timeout: Duration,
}

/// Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and proves the database answers. A database that is down
    /// fails here; retrying is the caller's policy.
    pub async fn connect(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let options: PgConnectOptions = settings
            .url
            .parse()
            .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            // No ping before every query: it doubled the round trips of the
            // hot path (measured with `cargo xtask bench`). A connection that
            // died with the server fails its query once (a 503) and is
            // replaced; the outage test shows the recovery.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One mapping from driver errors to the domain's, so no driver text
/// reaches a client and unique violations name their field.
fn map_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => match db.constraint() {
            Some("users_username_key_unique") => StoreError::Conflict(UniqueField::Username),
            Some("users_email_key_unique") => StoreError::Conflict(UniqueField::Email),
            _ => StoreError::Other(err.to_string()),
        },
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        // Class 08 (connection exception), 57P01-03 (admin shutdown, crash, cannot connect now).
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            StoreError::Unavailable(err.to_string())
        }
        // The server went away mid-conversation.
        sqlx::Error::Protocol(_) => StoreError::Unavailable(err.to_string()),
        e if store_sql::is_connectivity_error(e) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Other(err.to_string()),
    }
}

impl PostgresStore {
    async fn find_user_where(&self, column: &str, value: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(User::from))
    }

    async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_error)?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *conn)
            .await
            .map_err(map_error)
    }
}

impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id)
        .bind(user.username.as_str())
        .bind(user.username.key())
        .bind(user.email.as_str())
        .bind(user.email.key())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(User::from))
    }

    async fn find_user_by_username(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.find_user_where("username_key", username_key).await
    }

    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        self.find_user_where("email_key", email_key).await
    }

    async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<Vec<User>, StoreError> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM users ORDER BY username_key LIMIT $1 OFFSET $2");
        let rows: Vec<UserRow> = sqlx::query_as(&sql)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(User::from).collect())
    }
}

async fn insert_refresh_token(
    conn: &mut PgConnection,
    token: &NewRefreshToken,
    session_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (digest, session_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token.digest.as_slice())
    .bind(session_id)
    .bind(token.issued_at)
    .bind(token.expires_at)
    .execute(conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

impl PostgresStore {
    async fn token_with_session(
        conn: &mut PgConnection,
        digest: &TokenDigest,
    ) -> Result<Option<TokenSessionUserRow>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
             WHERE t.digest = $1"
        );
        sqlx::query_as(&sql)
            .bind(digest.as_slice())
            .fetch_optional(conn)
            .await
            .map_err(map_error)
    }
}

impl SessionStore for PostgresStore {
    async fn create_session(
        &self,
        session: &Session,
        first_token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, scope) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.revoked_at)
        .bind(&session.scope)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        insert_refresh_token(&mut tx, first_token, session.id).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn find_active_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2"
        );
        let row: Option<SessionUserRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(Into::into))
    }

    async fn consume_refresh_token(
        &self,
        digest: &TokenDigest,
        successor: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Consumed, StoreError> {
        // A concurrent UPDATE of the same row waits for the winner to
        // commit, re-checks `used_at IS NULL`, and matches nothing.
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let won: Option<Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $1, successor_digest = $2, successor_sealed = $3 \
             WHERE digest = $4 AND used_at IS NULL AND expires_at > $1 \
               AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > $1) \
             RETURNING session_id",
        )
        .bind(now)
        .bind(successor.digest.as_slice())
        .bind(successor.sealed.as_deref())
        .bind(digest.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let outcome = match won {
            Some(session_id) => {
                insert_refresh_token(&mut tx, successor, session_id).await?;
                let sql = format!(
                    "WITH s AS (UPDATE sessions SET expires_at = $1 WHERE id = $2 RETURNING *) \
                     SELECT {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} FROM s JOIN users u ON u.id = s.user_id"
                );
                let row: Option<SessionUserRow> = sqlx::query_as(&sql)
                    .bind(successor.expires_at)
                    .bind(session_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_error)?;
                match row {
                    Some(row) => {
                        let (session, user) = row.into();
                        Consumed::Rotated { session, user }
                    }
                    None => Consumed::Invalid,
                }
            }
            None => already_used_or_invalid(Self::token_with_session(&mut tx, digest).await?, now)?,
        };
        tx.commit().await.map_err(map_error)?;
        Ok(outcome)
    }

    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(RefreshTokenRecord, Session, User)>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        Self::token_with_session(&mut conn, digest)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    async fn revoke_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Tokens of the deleted sessions go with them (ON DELETE CASCADE).
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at IS NOT NULL")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(sessions.rows_affected())
    }
}

impl ThrottleStore for PostgresStore {
    async fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        let sql = format!("SELECT {THROTTLE_COLUMNS} FROM login_throttle WHERE key = $1");
        let row: Option<ThrottleRow> = sqlx::query_as(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(Into::into))
    }

    async fn update_throttle<F>(&self, key: &str, update: F) -> Result<ThrottleState, StoreError>
    where
        F: Fn(Option<ThrottleState>) -> ThrottleState + Send + Sync,
    {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Serialises updates of one key without needing its row to exist.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        let sql = format!("SELECT {THROTTLE_COLUMNS} FROM login_throttle WHERE key = $1");
        let current: Option<ThrottleRow> = sqlx::query_as(&sql)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?;
        let next = update(current.map(Into::into));
        sqlx::query(
            "INSERT INTO login_throttle (key, failures, window_started, locked_until, lockouts) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
             window_started = excluded.window_started, locked_until = excluded.locked_until, \
             lockouts = excluded.lockouts",
        )
        .bind(key)
        .bind(as_sql_int(next.failures))
        .bind(next.window_started)
        .bind(next.locked_until)
        .bind(as_sql_int(next.lockouts))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(next)
    }

    async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn purge_throttle(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM login_throttle \
             WHERE window_started < $1 AND (locked_until IS NULL OR locked_until <= $2)",
        )
        .bind(stale_before)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}

impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    /// Two processes migrating at once apply each step exactly once: both
    /// our lock and sqlx's are PostgreSQL advisory locks.
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        // Our own advisory lock spans "what was applied before" and the run,
        // so each process reports exactly the steps it applied itself.
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_REPORT_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(map_error)?;
        let outcome = async {
            let before = Self::applied_versions(&mut conn).await?;
            MIGRATOR
                .run_direct(&mut *conn)
                .await
                .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
            Ok(pending_migrations(&MIGRATOR, &before))
        }
        .await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_REPORT_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // The lock dies with the session; make sure the session dies too.
            let _ = conn.detach().close().await;
        }
        outcome
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        Ok(pending_migrations(
            &MIGRATOR,
            &Self::applied_versions(&mut conn).await?,
        ))
    }
}
