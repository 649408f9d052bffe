//! The use cases: register, log in, refresh, revoke, introspect, change
//! password, and resolve an access token to its user.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{Actor, Audited, Outcome};
use crate::error::AuthError;
use crate::flows::PendingCache;
use crate::id_token::{scope_has, IdTokenFacts, IdTokenIssuer, AMR_PASSWORD};
use crate::mail::Mailer;
use crate::model::{Consumed, NewRefreshToken, RefreshTokenRecord, Session, User};
use crate::oauth::{OAuthPolicy, TokenClient};
use crate::password::PasswordHasher;
use crate::refresh::RefreshToken;
use crate::store::Store;
use crate::throttle::ThrottlePolicy;
use crate::token::{AccessClaims, IssuedToken, TokenError, TokenIssuer};
use crate::validation::{Email, LoginKey, Password, Username, ValidationErrors};

/// Longest password accepted at login. Longer ones cannot exist (the policy
/// caps new passwords at 128 characters), so they fail without hashing
/// megabytes; 4 bytes a character covers any 128-character password.
const MAX_LOGIN_PASSWORD_BYTES: usize = 128 * 4;

/// Raw registration input, as received.
#[derive(Clone)]
pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("username", &self.username)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// Applies every rule, reporting all broken ones at once.
    pub fn validate(&self) -> Result<(Username, Email, Password), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let username = Username::parse(&self.username)
            .map_err(|e| errors.0.push(e))
            .ok();
        let email = Email::parse(&self.email).map_err(|e| errors.0.push(e)).ok();
        let password = Password::parse("password", &self.password, &self.username, &self.email)
            .map_err(|e| errors.0.push(e))
            .ok();
        match (username, email, password) {
            (Some(u), Some(e), Some(p)) if errors.is_empty() => Ok((u, e, p)),
            _ => Err(errors),
        }
    }
}

/// Session behaviour.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Lifetime of each refresh token (and so of an idle session).
    pub refresh_ttl: Duration,
    /// How long after its first use a refresh token may be presented again
    /// and get the same successor instead of revoking the session. Zero is
    /// strict rotation.
    pub refresh_reuse_grace: Duration,
    /// Scopes clients may request; others are dropped from grants.
    pub allowed_scopes: BTreeSet<String>,
    /// Failed-login throttling per account.
    pub throttle: ThrottlePolicy,
    /// Clients, grants and browser flows.
    pub oauth: OAuthPolicy,
    /// Audit records older than this are purged; zero keeps them forever.
    pub audit_retention: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_grace: Duration::ZERO,
            allowed_scopes: BTreeSet::new(),
            throttle: ThrottlePolicy::default(),
            oauth: OAuthPolicy::default(),
            audit_retention: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// What a successful login or refresh yields.
#[derive(Debug, Clone)]
pub struct LoginGrant {
    pub user: User,
    pub session_id: Uuid,
    pub access: IssuedToken,
    /// OpenID Connect ID token, when `openid` was granted.
    pub id_token: Option<String>,
    pub refresh: RefreshToken,
    /// The granted scope, when any was requested and allowed.
    pub scope: Option<String>,
    /// Whether `refresh` goes to the client: always for the password and
    /// refresh grants; for a code only with `offline_access` (the session
    /// still has a token, which simply expires unused).
    pub refresh_issued: bool,
}

/// Which kind of token an introspection or revocation concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        }
    }
}

/// RFC 7662 facts about an active token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub kind: TokenKind,
    /// The user id, or the client id of a client's own token.
    pub sub: String,
    /// `None` for a client's own token (`client_credentials`).
    pub username: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub scope: Option<String>,
    pub client_id: String,
}

/// The domain services over one store.
#[derive(Debug)]
pub struct AuthService<S> {
    store: S,
    hasher: PasswordHasher,
    tokens: TokenIssuer,
    /// OpenID Connect: without it no ID token is issued.
    id_tokens: Option<IdTokenIssuer>,
    policy: SessionPolicy,
    pending_pages: PendingCache,
    /// Mail (verification, reset, notices): without it none is written.
    mail: Option<Mailer>,
    /// Second factors: without them none can be enrolled.
    factors: Option<crate::mfa::FactorSettings>,
}

/// The login throttle's key for an existing account.
pub(crate) fn account_throttle_key(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl<S: Store> AuthService<S> {
    pub fn new(
        store: S,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            store,
            hasher,
            tokens,
            id_tokens: None,
            policy,
            pending_pages: PendingCache::default(),
            mail: None,
            factors: None,
        }
    }

    /// Second factors (authenticator apps, recovery codes, passkeys).
    pub fn with_factors(mut self, factors: crate::mfa::FactorSettings) -> Self {
        self.factors = Some(factors);
        self
    }

    pub(crate) fn factors(&self) -> Option<&crate::mfa::FactorSettings> {
        self.factors.as_ref()
    }

    /// Writes mail (verification links, resets, notices) to the outbox.
    pub fn with_mail(mut self, mailer: Mailer) -> Self {
        self.mail = Some(mailer);
        self
    }

    pub fn mail(&self) -> Option<&Mailer> {
        self.mail.as_ref()
    }

    /// Issues ID tokens (OpenID Connect) when `openid` is granted.
    pub fn with_id_tokens(mut self, id_tokens: IdTokenIssuer) -> Self {
        self.id_tokens = Some(id_tokens);
        self
    }

    pub fn id_tokens(&self) -> Option<&IdTokenIssuer> {
        self.id_tokens.as_ref()
    }

    pub(crate) fn pending_pages(&self) -> &PendingCache {
        &self.pending_pages
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// The resource-owner password grant: `login` is a username or an email.
    /// Starts a new session.
    ///
    /// Unknown accounts are verified against a dummy hash so that "no such
    /// user" and "wrong password" cost the same and read the same.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        requested_scope: Option<&str>,
    ) -> Result<LoginGrant, AuthError> {
        self.login_for(&TokenClient::Legacy, login, password, requested_scope)
            .await
    }

    /// The password grant on behalf of `client` (already authenticated and
    /// allowed the grant): the session and its tokens name the client.
    pub async fn login_for(
        &self,
        client: &TokenClient,
        login: &str,
        password: &str,
        requested_scope: Option<&str>,
    ) -> Result<LoginGrant, AuthError> {
        let user = self.check_password(login, password).await?;
        if self.has_second_factor(&user).await? {
            return Err(AuthError::SecondFactorRequired);
        }
        let scope = self.grant_scope(client, requested_scope);
        let now = Utc::now();
        let refresh = RefreshToken::generate();
        let first = self.refresh_record(&refresh, None, now);
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user.id,
            created_at: now,
            expires_at: first.expires_at,
            revoked_at: None,
            scope,
            client_id: client.id().to_owned(),
            auth_time: Some(crate::model::to_stored_precision(now)),
            amr: Some(AMR_PASSWORD.to_owned()),
            browser_session_id: None,
        };
        self.store.create_session(&session, &first).await?;
        self.grant(user, &session, refresh, None)
    }

    /// Verifies a login's password; the user when it matches and may log in.
    ///
    /// Throttling is keyed by account id, or by the login string when no
    /// account has it, so guessing at unknown names is throttled alike.
    pub(crate) async fn check_password(
        &self,
        login: &str,
        password: &str,
    ) -> Result<User, AuthError> {
        let user = self.find_by_login(login).await?;
        let throttle_key = match (&user, LoginKey::from_login(login)) {
            (Some(user), _) => account_throttle_key(user.id),
            (None, LoginKey::Username(key)) => format!("username:{key}"),
            (None, LoginKey::Email(key)) => format!("email:{key}"),
        };
        let account = user.as_ref().map(|u| u.id);
        let attempt = |outcome| {
            let audited = Audited::new(Actor::Anonymous, "sign_in", outcome);
            match account {
                Some(id) => audited.on_user(id),
                None => audited,
            }
        };
        let policy = &self.policy.throttle;
        let throttle = self.store.throttle_state(&throttle_key).await?;
        if let Some(retry_after) = policy.locked_for(throttle.as_ref(), Utc::now()) {
            self.audit(attempt(Outcome::Throttled)).await;
            return Err(AuthError::Throttled { retry_after });
        }
        let verification = if password.len() > MAX_LOGIN_PASSWORD_BYTES {
            None
        } else {
            let stored = user.as_ref().map(|u| u.password_hash.as_str());
            Some(self.hasher.verify(stored, password).await?)
        };
        let (user, verification) = match (user, verification) {
            (Some(user), Some(v)) if v.matches => (user, v),
            _ => {
                let now = Utc::now();
                self.store
                    .update_throttle(&throttle_key, |state| policy.after_failure(state, now))
                    .await?;
                self.audit(attempt(Outcome::Failure)).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        if throttle.is_some() {
            self.store.clear_throttle(&throttle_key).await?;
        }
        if user.disabled {
            self.audit(attempt(Outcome::Refused)).await;
            return Err(AuthError::AccountDisabled);
        }
        if !user.email_verified && self.mail.as_ref().is_some_and(|m| m.require_verified_email) {
            self.audit(attempt(Outcome::Refused)).await;
            return Err(AuthError::EmailNotVerified);
        }
        self.audit(
            Audited::new(Actor::User(user.id), "sign_in", Outcome::Success).on_user(user.id),
        )
        .await;
        if verification.needs_rehash {
            self.rehash(&user, password).await;
        }
        Ok(user)
    }

    /// The refresh-token grant: single use, rotated, with reuse detection.
    pub async fn refresh(&self, presented: &str) -> Result<LoginGrant, AuthError> {
        self.refresh_for(&TokenClient::Legacy, presented).await
    }

    /// The refresh grant for `client`: a token of a session granted to
    /// another client ends that session (it has leaked) and is refused.
    pub async fn refresh_for(
        &self,
        client: &TokenClient,
        presented: &str,
    ) -> Result<LoginGrant, AuthError> {
        let presented = RefreshToken::from_presented(presented);
        let now = Utc::now();
        let successor = RefreshToken::generate();
        let record = self.refresh_record(&successor, Some(&presented), now);
        match self
            .store
            .consume_refresh_token(&presented.digest(), &record, now)
            .await?
        {
            Consumed::Rotated { session, user } => {
                if session.client_id != client.id() {
                    self.store.revoke_session(session.id, now).await?;
                    tracing::warn!(
                        session_id = %session.id,
                        "refresh token presented by another client; session revoked"
                    );
                    return Err(AuthError::InvalidRefreshToken);
                }
                if user.disabled {
                    self.store.revoke_session(session.id, now).await?;
                    return Err(AuthError::AccountDisabled);
                }
                self.grant(user, &session, successor, None)
            }
            Consumed::AlreadyUsed {
                token,
                session,
                user,
            } => {
                let same_client = session.client_id == client.id();
                if let Some(same) = self
                    .grace_successor(&presented, &token, &session, &user, now)
                    .filter(|_| same_client)
                {
                    return self.grant(user, &session, same, None);
                }
                self.store.revoke_session(session.id, now).await?;
                tracing::warn!(
                    session_id = %session.id,
                    user_id = %user.id,
                    "refresh token reuse detected; session revoked"
                );
                self.audit(
                    Audited::new(Actor::Anonymous, "refresh.reuse_detected", Outcome::Refused)
                        .on_session(session.id),
                )
                .await;
                Err(AuthError::InvalidRefreshToken)
            }
            Consumed::Invalid => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// Inside the grace window, the successor the first use produced.
    fn grace_successor(
        &self,
        presented: &RefreshToken,
        token: &RefreshTokenRecord,
        session: &Session,
        user: &User,
        now: DateTime<Utc>,
    ) -> Option<RefreshToken> {
        let grace = chrono_duration(self.policy.refresh_reuse_grace);
        let within = token.used_at.is_some_and(|used| now - used <= grace);
        if grace.is_zero() || !within || !session.is_active(now) || user.disabled {
            return None;
        }
        presented.unseal(
            token.successor_sealed.as_deref()?,
            token.successor_digest.as_ref()?,
        )
    }

    /// The tokens of `session`: an access token, and an ID token when the
    /// session was granted `openid` (with `nonce` for a code's redemption;
    /// a refresh's ID token has none, Core §12.2).
    pub(crate) fn grant(
        &self,
        user: User,
        session: &Session,
        refresh: RefreshToken,
        nonce: Option<&str>,
    ) -> Result<LoginGrant, AuthError> {
        let signing_failed =
            |e: jsonwebtoken::errors::Error| AuthError::Internal(format!("signing failed: {e}"));
        let access = self
            .tokens
            .issue_for_client(
                &user,
                Some(session.id),
                session.scope.clone(),
                session.client_id.clone(),
            )
            .map_err(signing_failed)?;
        let id_token = match &self.id_tokens {
            Some(ids) if scope_has(session.scope.as_deref(), "openid") => Some(
                ids.issue(IdTokenFacts {
                    user: &user,
                    client_id: &session.client_id,
                    scope: session.scope.as_deref(),
                    auth_time: session.auth_time.unwrap_or(session.created_at).timestamp(),
                    nonce,
                    access_token: &access.token,
                    amr: session
                        .amr
                        .as_deref()
                        .unwrap_or(AMR_PASSWORD)
                        .split(' ')
                        .map(str::to_owned)
                        .collect(),
                    sid: session.browser_session_id.map(|id| id.to_string()),
                })
                .map_err(signing_failed)?,
            ),
            _ => None,
        };
        Ok(LoginGrant {
            user,
            session_id: session.id,
            access,
            id_token,
            refresh,
            scope: session.scope.clone(),
            refresh_issued: true,
        })
    }

    pub(crate) fn refresh_record(
        &self,
        token: &RefreshToken,
        sealed_by: Option<&RefreshToken>,
        now: DateTime<Utc>,
    ) -> NewRefreshToken {
        let grace_on = !self.policy.refresh_reuse_grace.is_zero();
        NewRefreshToken {
            digest: token.digest(),
            issued_at: now,
            expires_at: now + chrono_duration(self.policy.refresh_ttl),
            sealed: sealed_by
                .filter(|_| grace_on)
                .and_then(|old| old.seal(token)),
        }
    }

    /// Resolves a bearer token to its user, checking that its session is
    /// still active (so revocation takes effect at once).
    pub async fn current_user(&self, access_token: &str) -> Result<User, AuthError> {
        self.current_session(access_token)
            .await
            .map(|(_, user)| user)
    }

    /// The active session and user a bearer token stands for.
    pub async fn current_session(&self, access_token: &str) -> Result<(Session, User), AuthError> {
        let claims = self.tokens.verify(access_token)?;
        self.active_session_of(&claims).await
    }

    async fn active_session_of(&self, claims: &AccessClaims) -> Result<(Session, User), AuthError> {
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| TokenError::Malformed)?;
        let sid = claims
            .sid
            .as_deref()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or(TokenError::Malformed)?;
        match self.store.find_active_session(sid, Utc::now()).await? {
            Some((session, user)) if session.user_id == user_id && !user.disabled => {
                Ok((session, user))
            }
            Some((_, user)) if user.disabled => Err(TokenError::UnknownUser.into()),
            _ => Err(TokenError::Revoked.into()),
        }
    }

    /// RFC 7009: ends the session of an access or refresh token. Unknown
    /// tokens are not an error.
    pub async fn revoke(&self, token: &str, hint: Option<TokenKind>) -> Result<(), AuthError> {
        let now = Utc::now();
        let order = match hint {
            Some(TokenKind::Refresh) => [TokenKind::Refresh, TokenKind::Access],
            _ => [TokenKind::Access, TokenKind::Refresh],
        };
        for kind in order {
            let session_id = match kind {
                TokenKind::Access => self
                    .tokens
                    .verify(token)
                    .ok()
                    .and_then(|c| c.sid)
                    .and_then(|s| Uuid::parse_str(&s).ok()),
                TokenKind::Refresh => self
                    .store
                    .find_refresh_token(&RefreshToken::from_presented(token).digest())
                    .await?
                    .map(|(record, _, _)| record.session_id),
            };
            if let Some(id) = session_id {
                if self.store.revoke_session(id, now).await? {
                    self.audit(
                        Audited::new(Actor::Anonymous, "session.revoked", Outcome::Success)
                            .on_session(id),
                    )
                    .await;
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// RFC 7662: facts about a token that is currently valid, else `None`.
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspection>, AuthError> {
        if let Ok(claims) = self.tokens.verify(token) {
            if claims.is_client_token() {
                return self.introspect_client_token(claims).await;
            }
            return match self.active_session_of(&claims).await {
                Ok((_, user)) => Ok(Some(Introspection {
                    kind: TokenKind::Access,
                    sub: user.id.to_string(),
                    username: Some(user.username),
                    iat: claims.iat,
                    exp: claims.exp,
                    iss: claims.iss,
                    scope: claims.scope,
                    client_id: claims.client_id,
                })),
                Err(AuthError::InvalidToken(_)) => Ok(None),
                Err(other) => Err(other),
            };
        }
        let now = Utc::now();
        let found = self
            .store
            .find_refresh_token(&RefreshToken::from_presented(token).digest())
            .await?;
        Ok(found.and_then(|(record, session, user)| {
            let active = record.used_at.is_none()
                && record.expires_at > now
                && session.is_active(now)
                && !user.disabled;
            active.then(|| Introspection {
                kind: TokenKind::Refresh,
                sub: user.id.to_string(),
                username: Some(user.username),
                iat: record.issued_at.timestamp(),
                exp: record.expires_at.timestamp(),
                iss: self.tokens.config().issuer.clone(),
                scope: session.scope,
                client_id: session.client_id,
            })
        }))
    }

    /// A client's own token is active while its client still exists and
    /// may still use `client_credentials` (deleting the client, or taking
    /// the grant away, ends its tokens at once, like revoking a session).
    async fn introspect_client_token(
        &self,
        claims: crate::token::AccessClaims,
    ) -> Result<Option<Introspection>, AuthError> {
        let client = self.find_client(&claims.client_id).await?;
        let active = client
            .is_some_and(|(client, _)| client.allows(crate::client::GrantType::ClientCredentials));
        Ok(active.then_some(Introspection {
            kind: TokenKind::Access,
            sub: claims.sub,
            username: None,
            iat: claims.iat,
            exp: claims.exp,
            iss: claims.iss,
            scope: claims.scope,
            client_id: claims.client_id,
        }))
    }

    /// Changes the password of an authenticated user (see
    /// [`current_session`](Self::current_session)), ends every other session
    /// and tells them by mail.
    pub async fn change_password(
        &self,
        session: &Session,
        user: &User,
        current_password: &str,
        new_password: &str,
        locales: &[String],
    ) -> Result<(), AuthError> {
        let hash = self
            .new_password_hash(user, current_password, new_password)
            .await?;
        self.store_new_password(user, &hash, Some(session), locales)
            .await?;
        self.audit(
            Audited::new(Actor::User(user.id), "password.changed", Outcome::Success)
                .on_user(user.id),
        )
        .await;
        Ok(())
    }

    /// Deletes expired and revoked sessions, and throttle state that no
    /// longer matters; returns how many sessions went.
    pub async fn purge_expired(&self) -> Result<u64, AuthError> {
        let now = Utc::now();
        let sessions = self.store.purge_expired(now).await?;
        let flows = self.store.purge_flows(now).await?;
        if flows > 0 {
            tracing::debug!(
                flows,
                "purged expired authorization requests, codes and browser sessions"
            );
        }
        let mail = self
            .store
            .purge_mail(now - chrono::Duration::hours(1))
            .await?;
        if mail > 0 {
            tracing::debug!(mail, "purged delivered mail and spent links");
        }
        let forgotten = self
            .store
            .purge_throttle(self.policy.throttle.stale_before(now), now)
            .await?;
        if forgotten > 0 {
            tracing::debug!(forgotten, "forgot stale login throttle state");
        }
        if let Some(before) = self.audit_horizon(now) {
            let expired = self.store.purge_audit(before).await?;
            if expired > 0 {
                tracing::info!(expired, %before, "purged audit records past their retention");
            }
        }
        Ok(sessions)
    }

    /// Audit records from before this time are past `audit_retention`.
    fn audit_horizon(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let retention = self.policy.audit_retention;
        if retention.is_zero() {
            return None;
        }
        chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| now.checked_sub_signed(r))
    }

    pub(crate) async fn find_by_login(&self, login: &str) -> Result<Option<User>, AuthError> {
        let found = match LoginKey::from_login(login) {
            LoginKey::Username(key) => self.store.find_user_by_username(&key).await?,
            LoginKey::Email(key) => self.store.find_user_by_email(&key).await?,
        };
        Ok(found)
    }

    /// Replaces a hash made with old parameters. Best effort: a failure is
    /// logged and the login still succeeds.
    async fn rehash(&self, user: &User, password: &str) {
        let Ok(password) = Password::parse("password", password, "", "") else {
            // Old passwords that predate today's policy keep their hash until changed.
            return;
        };
        let result = match self.hasher.hash(&password).await {
            Ok(hash) => self
                .store
                .set_password_hash(user.id, &hash)
                .await
                .map_err(AuthError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "password hash upgraded to current parameters")
            }
            Err(e) => tracing::warn!(user_id = %user.id, error = %e, "password rehash failed"),
        }
    }

    /// The requested scope narrowed to the allowed ones (RFC 6749 3.3);
    /// `None` when nothing is left.
    fn grant_scope(&self, client: &TokenClient, requested: Option<&str>) -> Option<String> {
        let granted: BTreeSet<&str> = requested?
            .split(' ')
            .filter(|s| self.policy.allowed_scopes.contains(*s))
            .filter(|s| match client {
                TokenClient::Registered(c) => c.scopes.iter().any(|a| a == s),
                TokenClient::Legacy => true,
            })
            .collect();
        (!granted.is_empty()).then(|| granted.into_iter().collect::<Vec<_>>().join(" "))
    }
}
