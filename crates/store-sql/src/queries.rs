//! Every query of the SQL store, written once.
//!
//! This file is compiled once per enabled dialect: `sqlite.rs` and
//! `postgres.rs` each include it as a module and provide `super::Db`.
//! Whatever differs between the databases goes through [`Dialect`].

use auth_core::store::{
    to_stored_json, AuditStore, ClientStore, FactorStore, FlowStore, Lifecycle, MailStore,
    SessionStore, Store, StoreError, ThrottleStore, ThrottleUpdate, UserStore,
};
use auth_core::{
    AccountChange, Ceremony, EmailLink, Factor, MailOutcome, OutgoingMail, QueuedMail,
};
use auth_core::{
    AuthorizationCode, BrowserSession, Client, CodeRedemption, Consent, Consumed, NewRefreshToken,
    NewUser, PendingAuthorization, RefreshTokenRecord, Session, ThrottleState, TokenDigest, User,
    UserQuery, UserSummary,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Db;
use crate::rows::{
    already_used_or_invalid, as_sql_int, pending_migrations, put_in_key_order, require_found,
    SessionUserRow, ThrottleRow, TokenSessionUserRow, UserRow, UserSummaryRow, JOINED_USER_COLUMNS,
    SESSIONS_WITH_USERS, SESSION_COLUMNS, THROTTLE_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS,
    USER_SUMMARY_COLUMNS,
};
use crate::rows::{AuditRow, ConsentRow, AUDIT_COLUMNS};
use crate::rows::{
    BrowserSessionRow, CeremonyRow, FactorRow, SessionRow, CEREMONY_COLUMNS, FACTOR_COLUMNS,
};
use crate::rows::{
    BrowserSessionUserRow, ClientRow, CodeRow, RequestRow, BROWSER_SESSION_COLUMNS, CLIENT_COLUMNS,
    CODE_COLUMNS, SESSION_INSERT,
};
use crate::rows::{ClaimedMailRow, LinkRow, CLAIMED_MAIL_COLUMNS, LINK_COLUMNS};
use crate::{Dialect, SqlStore};

type Conn = <Db as sqlx::Database>::Connection;

fn map_error(err: sqlx::Error) -> StoreError {
    crate::map_error::<Db>(err)
}

impl SqlStore<Db> {
    async fn insert_user_on(conn: &mut Conn, user: &NewUser) -> Result<(), StoreError> {
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
        .bind(Db::time(user.created_at))
        .execute(conn)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn enqueue_on(conn: &mut Conn, mail: &OutgoingMail) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, created_at, due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(mail.id)
        .bind(&mail.to)
        .bind(&mail.subject)
        .bind(&mail.text)
        .bind(&mail.html)
        .bind(Db::time(mail.created_at))
        .execute(conn)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn insert_link_on(conn: &mut Conn, link: &EmailLink) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO email_links (digest, purpose, user_id, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(link.digest.as_slice())
        .bind(link.purpose.as_str())
        .bind(link.user_id)
        .bind(&link.email)
        .bind(Db::time(link.created_at))
        .bind(Db::time(link.expires_at))
        .execute(conn)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    /// Revokes every active session of a user but `keep` and deletes their
    /// browser sessions (password change and reset).
    async fn end_user_sessions_on(
        conn: &mut Conn,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let revoked = Self::revoke_user_sessions_on(conn, user_id, keep, now).await?;
        sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(map_error)?;
        Ok(revoked)
    }

    /// Revokes every active session of a user but `keep`; how many.
    async fn revoke_user_sessions_on(
        conn: &mut Conn,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR id <> $3)",
        )
        .bind(Db::time(now))
        .bind(user_id)
        .bind(keep)
        .execute(conn)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected())
    }

    /// Applies a spent link's change; `false` when its user is gone.
    async fn apply_on(
        conn: &mut Conn,
        user_id: Uuid,
        change: &AccountChange,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = match change {
            AccountChange::VerifyEmail { email_key } => {
                sqlx::query(
                    "UPDATE users SET email_verified = TRUE WHERE id = $1 AND email_key = $2",
                )
                .bind(user_id)
                .bind(email_key)
                .execute(&mut *conn)
                .await
                .map_err(map_error)?;
                return Ok(true);
            }
            AccountChange::ResetPassword { password_hash } => {
                let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_error)?;
                Self::end_user_sessions_on(conn, user_id, None, now).await?;
                done
            }
            AccountChange::ChangeEmail { email } => sqlx::query(
                "UPDATE users SET email = $1, email_key = $2, email_verified = TRUE WHERE id = $3",
            )
            .bind(email.as_str())
            .bind(email.key())
            .bind(user_id)
            .execute(&mut *conn)
            .await
            .map_err(map_error)?,
        };
        Ok(done.rows_affected() > 0)
    }

    async fn find_user_where(&self, column: &str, value: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(User::from))
    }

    async fn applied_versions(conn: &mut Conn) -> Result<Vec<i64>, StoreError> {
        let exists: bool = sqlx::query_scalar(Db::MIGRATION_TABLE_EXISTS)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_error)?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&mut *conn)
            .await
            .map_err(map_error)
    }

    async fn insert_refresh_token(
        conn: &mut Conn,
        token: &NewRefreshToken,
        session_id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (digest, session_id, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token.digest.as_slice())
        .bind(session_id)
        .bind(Db::time(token.issued_at))
        .bind(Db::time(token.expires_at))
        .execute(conn)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn token_with_session(
        conn: &mut Conn,
        digest: &TokenDigest,
    ) -> Result<Option<TokenSessionUserRow>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             JOIN users u ON u.id = s.user_id WHERE t.digest = $1"
        );
        sqlx::query_as(&sql)
            .bind(digest.as_slice())
            .fetch_optional(conn)
            .await
            .map_err(map_error)
    }
}

impl UserStore for SqlStore<Db> {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        Self::insert_user_on(&mut conn, user).await
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

    async fn update_email(
        &self,
        id: Uuid,
        email: &str,
        email_key: &str,
        verified: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET email = $1, email_key = $2, email_verified = $3 WHERE id = $4",
        )
        .bind(email)
        .bind(email_key)
        .bind(verified)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn search_users(&self, query: &UserQuery) -> Result<Vec<UserSummary>, StoreError> {
        let page = user_search_sql(Db::BYTE_ORDER, query);
        let texts = user_search_texts(query);
        let rows: Vec<UserSummaryRow> = match Db::user_page_as_json(&page) {
            Some(sql) => {
                let mut statement = sqlx::query_scalar::<_, String>(&sql);
                for text in &texts {
                    statement = statement.bind(text.as_str());
                }
                let json = statement.fetch_one(&self.pool).await.map_err(map_error)?;
                let mut rows: Vec<UserSummaryRow> = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Other(format!("unreadable account page: {e}")))?;
                put_in_key_order(&mut rows);
                rows
            }
            None => {
                let mut statement = sqlx::query_as::<_, UserSummaryRow>(&page);
                for text in &texts {
                    statement = statement.bind(text.as_str());
                }
                statement.fetch_all(&self.pool).await.map_err(map_error)?
            }
        };
        Ok(rows.into_iter().map(UserSummary::from).collect())
    }
}

/// The parameters of [`user_search_sql`], in its order: the cursor, then a
/// prefix's range.
fn user_search_texts(query: &UserQuery) -> Vec<String> {
    let mut texts = Vec::new();
    if let Some(after) = &query.after {
        texts.push(after.clone());
    }
    if let Some(prefix) = &query.prefix {
        texts.push(prefix.clone());
        texts.push(format!("{prefix}{}", char::MAX));
    }
    texts
}

/// The account-list statement for the filters this query has: its shape
/// varies rather than `$n IS NULL OR ...`, which would defeat a generic
/// plan's index use. A prefix is a byte range `[p, p + U+10FFFF)` on either
/// key, which both the ordered index and the email index serve.
///
/// The limit is written into the statement (a number this code computed,
/// never text from a request): with `LIMIT $n` PostgreSQL judged the
/// generic plan worse than a custom one and planned every page anew
/// (`EXPLAIN ANALYZE EXECUTE`: 40–80 µs of planning for 60 µs of
/// execution); with the limit written in, it settles on the generic plan
/// after five pages (5 µs). One statement per page size, in each
/// connection's statement cache.
fn user_search_sql(byte_order: &str, query: &UserQuery) -> String {
    let username = format!("username_key{byte_order}");
    let email = format!("email_key{byte_order}");
    let mut conditions = Vec::new();
    let mut next = 1;
    if query.after.is_some() {
        conditions.push(format!("{username} > ${next}"));
        next += 1;
    }
    if query.prefix.is_some() {
        let (from, to) = (next, next + 1);
        conditions.push(format!(
            "(({username} >= ${from} AND {username} < ${to}) \
             OR ({email} >= ${from} AND {email} < ${to}))"
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    format!(
        "SELECT {USER_SUMMARY_COLUMNS} FROM users{filter} ORDER BY {username} LIMIT {}",
        query.limit
    )
}

impl SessionStore for SqlStore<Db> {
    async fn create_session(
        &self,
        session: &Session,
        first_token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        let bind_session = |sql| {
            sqlx::query(sql)
                .bind(session.id)
                .bind(session.user_id)
                .bind(Db::time(session.created_at))
                .bind(Db::time(session.expires_at))
                .bind(session.revoked_at.map(Db::time))
                .bind(&session.scope)
                .bind(&session.client_id)
                .bind(session.auth_time.map(Db::time))
                .bind(&session.amr)
                .bind(session.browser_session_id)
        };
        if let Some(both) = Db::SESSION_WITH_TOKEN_INSERT {
            bind_session(both)
                .bind(first_token.digest.as_slice())
                .bind(Db::time(first_token.issued_at))
                .bind(Db::time(first_token.expires_at))
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        bind_session(SESSION_INSERT)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        Self::insert_refresh_token(&mut tx, first_token, session.id).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn find_active_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, {JOINED_USER_COLUMNS} FROM {SESSIONS_WITH_USERS} \
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2"
        );
        let row: Option<SessionUserRow> = sqlx::query_as(&sql)
            .bind(id)
            .bind(Db::time(now))
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
        // The conditional UPDATE is the single-use guarantee. SQLite: the
        // write transaction serialises consumers, so exactly one sees
        // `used_at IS NULL`. PostgreSQL: a concurrent UPDATE of the same row
        // waits for the winner to commit, re-checks `used_at IS NULL`, and
        // matches nothing.
        let mut tx = self
            .pool
            .begin_with(Db::BEGIN_WRITE)
            .await
            .map_err(map_error)?;
        let won: Option<Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $1, successor_digest = $2, successor_sealed = $3 \
             WHERE digest = $4 AND used_at IS NULL AND expires_at > $1 \
               AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > $1) \
             RETURNING session_id",
        )
        .bind(Db::time(now))
        .bind(successor.digest.as_slice())
        .bind(successor.sealed.as_deref())
        .bind(digest.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let outcome = match won {
            Some(session_id) => {
                Self::insert_refresh_token(&mut tx, successor, session_id).await?;
                match Db::slide_session(&mut tx, session_id, successor.expires_at)
                    .await
                    .map_err(map_error)?
                {
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
                .bind(Db::time(now))
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
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        Self::revoke_user_sessions_on(&mut conn, user_id, keep, now).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        // Tokens of the deleted sessions go with them (ON DELETE CASCADE).
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at IS NOT NULL")
                .bind(Db::time(now))
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1")
            .bind(Db::time(now))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(sessions.rows_affected())
    }
}

impl ClientStore for SqlStore<Db> {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_digest, redirect_uris, post_logout_redirect_uris, \
             grant_types, scopes, first_party, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(client.secret_digest.as_ref().map(|d| d.as_slice()))
        .bind(to_stored_json(&client.redirect_uris)?)
        .bind(to_stored_json(&client.post_logout_redirect_uris)?)
        .bind(to_stored_json(&client.grant_types)?)
        .bind(to_stored_json(&client.scopes)?)
        .bind(client.first_party)
        .bind(Db::time(client.created_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
        let row: Option<ClientRow> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id");
        let rows: Vec<ClientRow> = sqlx::query_as(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn update_client(&self, client: &Client) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET name = $2, secret_digest = $3, redirect_uris = $4, \
             post_logout_redirect_uris = $5, grant_types = $6, scopes = $7, first_party = $8 \
             WHERE id = $1",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(client.secret_digest.as_ref().map(|d| d.as_slice()))
        .bind(to_stored_json(&client.redirect_uris)?)
        .bind(to_stored_json(&client.post_logout_redirect_uris)?)
        .bind(to_stored_json(&client.grant_types)?)
        .bind(to_stored_json(&client.scopes)?)
        .bind(client.first_party)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        require_found(done.rows_affected())
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }
}

impl FlowStore for SqlStore<Db> {
    async fn insert_authorization_request(
        &self,
        request: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_requests (id, params, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(request.id)
        .bind(to_stored_json(&request.params)?)
        .bind(Db::time(request.created_at))
        .bind(Db::time(request.expires_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn find_authorization_request(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let row: Option<RequestRow> = sqlx::query_as(
            "SELECT id, params, created_at, expires_at FROM authorization_requests \
             WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(Db::time(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn delete_authorization_request(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM authorization_requests WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (digest, client_id, session_id, grant_data, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(code.digest.as_slice())
        .bind(&code.client_id)
        .bind(code.session_id)
        .bind(to_stored_json(&code.grant)?)
        .bind(Db::time(code.created_at))
        .bind(Db::time(code.expires_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    /// One conditional `UPDATE ... RETURNING`: the database decides the
    /// winner of concurrent redemptions.
    async fn redeem_authorization_code(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<CodeRedemption, StoreError> {
        let sql = format!(
            "UPDATE authorization_codes SET used_at = $1 \
             WHERE digest = $2 AND used_at IS NULL AND expires_at > $1 RETURNING {CODE_COLUMNS}"
        );
        let won: Option<CodeRow> = sqlx::query_as(&sql)
            .bind(Db::time(now))
            .bind(digest.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        if let Some(row) = won {
            return Ok(CodeRedemption::Redeemed(Box::new(row.try_into()?)));
        }
        let used: Option<Uuid> = sqlx::query_scalar(
            "SELECT session_id FROM authorization_codes WHERE digest = $1 AND used_at IS NOT NULL",
        )
        .bind(digest.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(match used {
            Some(session_id) => CodeRedemption::AlreadyUsed { session_id },
            None => CodeRedemption::Invalid,
        })
    }

    async fn create_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO browser_sessions (digest, id, user_id, auth_time, created_at, \
             idle_expires_at, expires_at, amr) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(session.digest.as_slice())
        .bind(session.id)
        .bind(session.user_id)
        .bind(Db::time(session.auth_time))
        .bind(Db::time(session.created_at))
        .bind(Db::time(session.idle_expires_at))
        .bind(Db::time(session.expires_at))
        .bind(session.amr.join(" "))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn touch_browser_session(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        idle_until: DateTime<Utc>,
    ) -> Result<Option<(BrowserSession, User)>, StoreError> {
        let touched = sqlx::query(
            "UPDATE browser_sessions SET idle_expires_at = $1 \
             WHERE digest = $2 AND idle_expires_at > $3 AND expires_at > $3",
        )
        .bind(Db::time(idle_until))
        .bind(digest.as_slice())
        .bind(Db::time(now))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        if touched.rows_affected() == 0 {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {BROWSER_SESSION_COLUMNS}, {JOINED_USER_COLUMNS} \
             FROM browser_sessions b JOIN users u ON u.id = b.user_id WHERE b.digest = $1"
        );
        let row: Option<BrowserSessionUserRow> = sqlx::query_as(&sql)
            .bind(digest.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn end_browser_session(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM browser_sessions WHERE digest = $1")
            .bind(digest.as_slice())
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn sign_out_browser(&self, id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query("DELETE FROM browser_sessions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 \
             WHERE browser_session_id = $2 AND revoked_at IS NULL",
        )
        .bind(Db::time(now))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(revoked.rows_affected())
    }

    async fn find_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)
    }

    async fn save_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, \
             granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(Db::time(now))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn list_consents(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError> {
        let rows = sqlx::query_as::<_, ConsentRow>(
            "SELECT client_id, scope, granted_at FROM consents \
             WHERE user_id = $1 ORDER BY client_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(rows.into_iter().map(Consent::from).collect())
    }

    async fn revoke_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let withdrawn = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        if withdrawn.rows_affected() == 0 {
            return Ok(None);
        }
        let revoked = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 \
             WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(Db::time(now))
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(Some(revoked.rows_affected()))
    }

    async fn purge_flows(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut purged = 0;
        for sql in [
            "DELETE FROM authorization_requests WHERE expires_at <= $1",
            "DELETE FROM authorization_codes WHERE expires_at <= $1",
            "DELETE FROM browser_sessions WHERE expires_at <= $1 OR idle_expires_at <= $1",
            "DELETE FROM ceremonies WHERE expires_at <= $1",
        ] {
            let done = sqlx::query(sql)
                .bind(Db::time(now))
                .execute(&self.pool)
                .await
                .map_err(map_error)?;
            purged += done.rows_affected();
        }
        Ok(purged)
    }
}

impl ThrottleStore for SqlStore<Db> {
    async fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        let sql = format!("SELECT {THROTTLE_COLUMNS} FROM login_throttle WHERE key = $1");
        let row: Option<ThrottleRow> = sqlx::query_as(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(row.map(Into::into))
    }

    async fn update_throttle<F: ThrottleUpdate>(
        &self,
        key: &str,
        update: F,
    ) -> Result<ThrottleState, StoreError> {
        let mut tx = self
            .pool
            .begin_with(Db::BEGIN_WRITE)
            .await
            .map_err(map_error)?;
        Db::lock_throttle_key(&mut tx, key)
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
        .bind(Db::time(next.window_started))
        .bind(next.locked_until.map(Db::time))
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
        .bind(Db::time(stale_before))
        .bind(Db::time(now))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}

impl MailStore for SqlStore<Db> {
    async fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        Self::enqueue_on(&mut conn, mail).await
    }

    async fn claim_mail(
        &self,
        claim: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        // The outer conditions repeat the inner ones: PostgreSQL re-checks
        // them on a row another claim changed meanwhile, so it is skipped.
        let free =
            "finished_at IS NULL AND due_at <= $3 AND (held_until IS NULL OR held_until <= $3)";
        let sql = format!(
            "UPDATE mail_outbox SET claim = $1, held_until = $2, attempts = attempts + 1 \
             WHERE {free} AND id IN (SELECT id FROM mail_outbox WHERE {free} \
               ORDER BY created_at, id LIMIT $4{}) \
             RETURNING {CLAIMED_MAIL_COLUMNS}",
            Db::SKIP_LOCKED
        );
        let mut tx = self
            .pool
            .begin_with(Db::BEGIN_WRITE)
            .await
            .map_err(map_error)?;
        let rows: Vec<ClaimedMailRow> = sqlx::query_as(&sql)
            .bind(claim)
            .bind(Db::time(lease_until))
            .bind(Db::time(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        let mut claimed: Vec<QueuedMail> = rows.into_iter().map(|r| r.into_queued(claim)).collect();
        claimed.sort_by_key(|q| (q.mail.created_at, q.mail.id));
        Ok(claimed)
    }

    async fn finish_mail(
        &self,
        id: Uuid,
        claim: Uuid,
        outcome: &MailOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = match outcome {
            MailOutcome::Retry { at, error } => sqlx::query(
                "UPDATE mail_outbox SET claim = NULL, held_until = NULL, due_at = $1, last_error = $2 \
                 WHERE id = $3 AND claim = $4 AND finished_at IS NULL",
            )
            .bind(Db::time(*at))
            .bind(error)
            .bind(id)
            .bind(claim),
            MailOutcome::Sent | MailOutcome::GaveUp { .. } => {
                let (label, error) = match outcome {
                    MailOutcome::GaveUp { error } => ("gave_up", Some(error.as_str())),
                    _ => ("sent", None),
                };
                sqlx::query(
                    "UPDATE mail_outbox SET claim = NULL, held_until = NULL, finished_at = $1, \
                       outcome = $2, last_error = $3, subject = '', text_body = '', html_body = '' \
                     WHERE id = $4 AND claim = $5 AND finished_at IS NULL",
                )
                .bind(Db::time(now))
                .bind(label)
                .bind(error)
                .bind(id)
                .bind(claim)
            }
        }
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_user_with_link(
        &self,
        user: &NewUser,
        link: &EmailLink,
        mail: &OutgoingMail,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        Self::insert_user_on(&mut tx, user).await?;
        Self::insert_link_on(&mut tx, link).await?;
        Self::enqueue_on(&mut tx, mail).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn create_email_link(
        &self,
        link: &EmailLink,
        mail: &OutgoingMail,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        Self::insert_link_on(&mut tx, link).await?;
        Self::enqueue_on(&mut tx, mail).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn find_email_link(&self, digest: &TokenDigest) -> Result<Option<EmailLink>, StoreError> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM email_links WHERE digest = $1");
        let row: Option<LinkRow> = sqlx::query_as(&sql)
            .bind(digest.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(EmailLink::try_from).transpose()
    }

    async fn use_email_link(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        change: &AccountChange,
        mail: Option<&OutgoingMail>,
    ) -> Result<bool, StoreError> {
        // Single use as for refresh tokens: the conditional UPDATE under a
        // write transaction; a change that fails rolls the spending back.
        let mut tx = self
            .pool
            .begin_with(Db::BEGIN_WRITE)
            .await
            .map_err(map_error)?;
        let user_id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE email_links SET used_at = $1 \
             WHERE digest = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(Db::time(now))
        .bind(digest.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(user_id) = user_id else {
            return Ok(false);
        };
        if !Self::apply_on(&mut tx, user_id, change, now).await? {
            return Ok(false);
        }
        if let Some(mail) = mail {
            Self::enqueue_on(&mut tx, mail).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn replace_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
        notice: Option<&OutgoingMail>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        require_found(done.rows_affected())?;
        let revoked = Self::end_user_sessions_on(&mut tx, user_id, keep, now).await?;
        if let Some(notice) = notice {
            Self::enqueue_on(&mut tx, notice).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(revoked)
    }

    async fn purge_mail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let mail = sqlx::query("DELETE FROM mail_outbox WHERE finished_at < $1")
            .bind(Db::time(before))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        let links = sqlx::query("DELETE FROM email_links WHERE COALESCE(used_at, expires_at) < $1")
            .bind(Db::time(before))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(mail.rows_affected() + links.rows_affected())
    }
}

impl FactorStore for SqlStore<Db> {
    async fn add_factor(&self, factor: &Factor) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO factors (id, user_id, kind, name, data, credential_id, last_step, \
             created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(factor.id)
        .bind(factor.user_id)
        .bind(factor.kind.as_str())
        .bind(&factor.name)
        .bind(&factor.data)
        .bind(&factor.credential_id)
        .bind(factor.last_step)
        .bind(Db::time(factor.created_at))
        .bind(factor.last_used_at.map(Db::time))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn list_factors(&self, user_id: Uuid) -> Result<Vec<Factor>, StoreError> {
        let sql = format!("SELECT {FACTOR_COLUMNS} FROM factors WHERE user_id = $1 ORDER BY id");
        let rows: Vec<FactorRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Factor>, StoreError> {
        let sql = format!("SELECT {FACTOR_COLUMNS} FROM factors WHERE credential_id = $1");
        let row: Option<FactorRow> = sqlx::query_as(&sql)
            .bind(credential_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn advance_totp_step(
        &self,
        factor_id: Uuid,
        step: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE factors SET last_step = $1, last_used_at = $2 WHERE id = $3 AND last_step < $1",
        )
        .bind(step)
        .bind(Db::time(now))
        .bind(factor_id)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_passkey_use(
        &self,
        factor_id: Uuid,
        data: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE factors SET data = $1, last_used_at = $2 WHERE id = $3")
            .bind(data)
            .bind(Db::time(now))
            .bind(factor_id)
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_factor(&self, user_id: Uuid, factor_id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let done = sqlx::query("DELETE FROM factors WHERE id = $1 AND user_id = $2")
            .bind(factor_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        sqlx::query(
            "DELETE FROM recovery_codes WHERE user_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM factors WHERE user_id = $1)",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        digests: &[TokenDigest],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        for digest in digests {
            sqlx::query(
                "INSERT INTO recovery_codes (user_id, digest, created_at) VALUES ($1, $2, $3)",
            )
            .bind(user_id)
            .bind(digest.as_slice())
            .bind(Db::time(now))
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        digest: &TokenDigest,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND digest = $2")
            .bind(user_id)
            .bind(digest.as_slice())
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_recovery_codes(&self, user_id: Uuid) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&self.pool)
                .await
                .map_err(map_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn reset_factors(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_error)?;
        let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let removed = sqlx::query("DELETE FROM factors WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        Self::end_user_sessions_on(&mut tx, user_id, None, now).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(removed.rows_affected())
    }

    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ceremonies (digest, kind, user_id, data, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ceremony.digest.as_slice())
        .bind(ceremony.kind.as_str())
        .bind(ceremony.user_id)
        .bind(&ceremony.data)
        .bind(Db::time(ceremony.expires_at))
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn find_ceremony(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        let sql = format!(
            "SELECT {CEREMONY_COLUMNS} FROM ceremonies WHERE digest = $1 AND expires_at > $2"
        );
        let row: Option<CeremonyRow> = sqlx::query_as(&sql)
            .bind(digest.as_slice())
            .bind(Db::time(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        row.map(TryInto::try_into).transpose()
    }

    async fn take_ceremony(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        // DELETE ... RETURNING: the row goes to exactly one caller.
        let sql = format!("DELETE FROM ceremonies WHERE digest = $1 RETURNING {CEREMONY_COLUMNS}");
        let row: Option<CeremonyRow> = sqlx::query_as(&sql)
            .bind(digest.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_error)?;
        let ceremony: Option<Ceremony> = row.map(TryInto::try_into).transpose()?;
        Ok(ceremony.filter(|c| c.expires_at > now))
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Session>, Vec<BrowserSession>), StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $1 \
             AND s.revoked_at IS NULL AND s.expires_at > $2 ORDER BY s.created_at DESC, s.id DESC"
        );
        let sessions: Vec<SessionRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(Db::time(now))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        let sql = format!(
            "SELECT {BROWSER_SESSION_COLUMNS} FROM browser_sessions b WHERE b.user_id = $1 \
             AND b.expires_at > $2 AND b.idle_expires_at > $2 \
             ORDER BY b.created_at DESC, b.id DESC"
        );
        let browsers: Vec<BrowserSessionRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(Db::time(now))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok((
            sessions.into_iter().map(Into::into).collect(),
            browsers
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
        ))
    }
}

impl AuditStore for SqlStore<Db> {
    async fn append_audit(&self, event: &auth_core::AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, time, actor, action, target, outcome, client_address, \
             request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.id)
        .bind(Db::time(event.time))
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.target)
        .bind(&event.outcome)
        .bind(&event.client_address)
        .bind(&event.request_id)
        .execute(&self.pool)
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn query_audit(
        &self,
        query: &auth_core::AuditQuery,
    ) -> Result<Vec<auth_core::AuditEvent>, StoreError> {
        // One statement for every combination: an absent condition binds NULL.
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log \
             WHERE ($1 IS NULL OR time >= $1) AND ($2 IS NULL OR time < $2) \
             AND ($3 IS NULL OR actor = $3) AND ($4 IS NULL OR action = $4) \
             AND ($5 IS NULL OR target = $5) AND ($6 IS NULL OR id > $6) \
             ORDER BY id LIMIT $7"
        );
        let rows: Vec<AuditRow> = sqlx::query_as(&sql)
            .bind(query.since.map(Db::time))
            .bind(query.until.map(Db::time))
            .bind(&query.actor)
            .bind(&query.action)
            .bind(&query.target)
            .bind(query.after)
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_log WHERE time < $1")
            .bind(Db::time(before))
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected())
    }
}

impl Lifecycle for SqlStore<Db> {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_error)
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        Db::lock_migrations(&mut conn).await.map_err(map_error)?;
        let outcome = async {
            let before = Self::applied_versions(&mut conn).await?;
            Db::migrator()
                .run_direct(&mut *conn)
                .await
                .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
            Ok(pending_migrations(Db::migrator(), &before))
        }
        .await;
        if Db::unlock_migrations(&mut conn).await.is_err() {
            // A lock held by a session dies with it; make sure it dies.
            let _ = sqlx::Connection::close(conn.detach()).await;
        }
        outcome
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_error)?;
        Ok(pending_migrations(
            Db::migrator(),
            &Self::applied_versions(&mut conn).await?,
        ))
    }
}

impl Store for SqlStore<Db> {
    fn backend_name(&self) -> &'static str {
        Db::BACKEND
    }
}
