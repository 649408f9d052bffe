//! The SQLite store: Tessera's embedded default, one file, no setup.
//!
//! WAL mode lets readers run beside the single writer; a busy timeout turns
//! write contention into short waits instead of errors.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use auth_core::store::{SessionStore, Store, StoreError, ThrottleStore, UniqueField, UserStore};
use auth_core::{
    Consumed, NewRefreshToken, NewUser, RefreshTokenRecord, Session, ThrottleState, TokenDigest,
    User,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use store_sql::{
    already_used_or_invalid, as_sql_int, pending_migrations, require_found, SessionUserRow,
    ThrottleRow, TokenSessionUserRow, UserRow, JOINED_USER_COLUMNS, SESSION_COLUMNS,
    THROTTLE_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS,
};
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection settings.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    /// `sqlite://path/to/file.db` (the file and its folder are created).
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(settings: &SqliteSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&settings.url)
            .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(folder) = options.get_filename().parent() {
            create_folder(folder)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            // A local file does not drop connections; skip the per-query ping.
            .test_before_acquire(false)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }
}

fn create_folder(folder: &Path) -> Result<(), StoreError> {
    if folder.as_os_str().is_empty() || folder.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(folder)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", folder.display())))
}

/// One mapping from driver errors to the domain's, so no driver text
/// reaches a client and unique violations name their field.
fn map_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // SQLite reports "UNIQUE constraint failed: users.email_key".
            if db.message().contains("email_key") {
                StoreError::Conflict(UniqueField::Email)
            } else if db.message().contains("username_key") {
                StoreError::Conflict(UniqueField::Username)
            } else {
                StoreError::Other(err.to_string())
            }
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(err.to_string())
        }
        e if store_sql::is_connectivity_error(e) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Other(err.to_string()),
    }
}

impl SqliteStore {
    async fn find_user_where(&self, column: &str, value: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = ?");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(User::from))
    }

    async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        if table.is_none() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)
    }
}

impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash, created_at, disabled) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
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
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
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
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
            .bind(disabled)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<Vec<User>, StoreError> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM users ORDER BY username_key LIMIT ? OFFSET ?");
        let rows: Vec<UserRow> = sqlx::query_as(&sql)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(User::from).collect())
    }
}

/// Times as fixed-width RFC 3339 UTC text, so SQL comparisons are correct.
fn ts(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

async fn insert_refresh_token(
    conn: &mut sqlx::SqliteConnection,
    token: &NewRefreshToken,
    session_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (digest, session_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(token.digest.as_slice())
    .bind(session_id)
    .bind(ts(token.issued_at))
    .bind(ts(token.expires_at))
    .execute(conn)
    .await
    .map_err(map_error)?;
    Ok(())
}

impl SqliteStore {
    async fn token_with_session(
        conn: &mut sqlx::SqliteConnection,
        digest: &TokenDigest,
    ) -> Result<Option<TokenSessionUserRow>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id \
             WHERE t.digest = ?"
        );
        sqlx::query_as(&sql)
            .bind(digest.as_slice())
            .fetch_optional(conn)
            .await
            .map_err(map_error)
    }

    async fn session_with_user(
        conn: &mut sqlx::SqliteConnection,
        id: Uuid,
    ) -> Result<Option<SessionUserRow>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"
        );
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(map_error)
    }
}

impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        session: &Session,
        first_token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, scope) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(session.id)
        .bind(session.user_id)
        .bind(ts(session.created_at))
        .bind(ts(session.expires_at))
        .bind(session.revoked_at.map(ts))
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
             WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ?"
        );
        let row: Option<SessionUserRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(ts(now))
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
        // The UPDATE takes SQLite's write lock first thing, so concurrent
        // consumers serialise and exactly one sees `used_at IS NULL`.
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let won: Option<Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = ?, successor_digest = ?, successor_sealed = ? \
             WHERE digest = ? AND used_at IS NULL AND expires_at > ? \
               AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > ?) \
             RETURNING session_id",
        )
        .bind(ts(now))
        .bind(successor.digest.as_slice())
        .bind(successor.sealed.as_deref())
        .bind(digest.as_slice())
        .bind(ts(now))
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let outcome = match won {
            Some(session_id) => {
                insert_refresh_token(&mut tx, successor, session_id).await?;
                sqlx::query("UPDATE sessions SET expires_at = ? WHERE id = ?")
                    .bind(ts(successor.expires_at))
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_error)?;
                match Self::session_with_user(&mut tx, session_id).await? {
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
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(ts(now))
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
            "UPDATE sessions SET revoked_at = ? \
             WHERE user_id = ? AND revoked_at IS NULL AND (? IS NULL OR id <> ?)",
        )
        .bind(ts(now))
        .bind(user_id)
        .bind(keep)
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
            sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR revoked_at IS NOT NULL")
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= ?")
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(sessions.rows_affected())
    }
}

impl ThrottleStore for SqliteStore {
    async fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        let sql = format!("SELECT {THROTTLE_COLUMNS} FROM login_throttle WHERE key = ?");
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)?;
        let sql = format!("SELECT {THROTTLE_COLUMNS} FROM login_throttle WHERE key = ?");
        let current: Option<ThrottleRow> = sqlx::query_as(&sql)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?;
        let next = update(current.map(Into::into));
        sqlx::query(
            "INSERT INTO login_throttle (key, failures, window_started, locked_until, lockouts) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, \
             window_started = excluded.window_started, locked_until = excluded.locked_until, \
             lockouts = excluded.lockouts",
        )
        .bind(key)
        .bind(as_sql_int(next.failures))
        .bind(ts(next.window_started))
        .bind(next.locked_until.map(ts))
        .bind(as_sql_int(next.lockouts))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(next)
    }

    async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_throttle WHERE key = ?")
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
             WHERE window_started < ? AND (locked_until IS NULL OR locked_until <= ?)",
        )
        .bind(ts(stale_before))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}

impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let before = self.applied_versions().await?;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        Ok(pending_migrations(&MIGRATOR, &before))
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(pending_migrations(
            &MIGRATOR,
            &self.applied_versions().await?,
        ))
    }
}
