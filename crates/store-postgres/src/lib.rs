//! The PostgreSQL store, for production and for running several Tessera
//! processes over one database.

use std::time::Duration;

use auth_core::store::{Store, StoreError, UniqueField, UserStore};
use auth_core::{NewUser, User};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// Advisory-lock key serialising whole migration runs ("tessera" in ASCII).
const MIGRATION_REPORT_LOCK: i64 = 0x0074_6573_7365_7261;
use store_sql::{pending_migrations, require_found, UserRow, USER_COLUMNS};
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
            // A connection that died with the server is noticed before use.
            .test_before_acquire(true)
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
