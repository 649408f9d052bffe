//! The use cases: register, log in, and resolve an access token to its user.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::error::AuthError;
use crate::model::{NewUser, User};
use crate::password::PasswordHasher;
use crate::store::Store;
use crate::token::{IssuedToken, TokenError, TokenIssuer};
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

/// What a successful login yields.
#[derive(Debug, Clone)]
pub struct LoginGrant {
    pub user: User,
    pub access: IssuedToken,
    /// The granted scope, when any was requested and allowed.
    pub scope: Option<String>,
}

/// The domain services over one store.
#[derive(Debug)]
pub struct AuthService<S> {
    store: S,
    hasher: PasswordHasher,
    tokens: TokenIssuer,
    allowed_scopes: BTreeSet<String>,
}

impl<S: Store> AuthService<S> {
    pub fn new(
        store: S,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        allowed_scopes: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            store,
            hasher,
            tokens,
            allowed_scopes: allowed_scopes.into_iter().collect(),
        }
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

    /// Creates an account. Validation runs before any hashing, so bad input
    /// costs nothing; uniqueness is settled by the store's insert.
    pub async fn register(&self, input: &Registration) -> Result<User, AuthError> {
        let (username, email, password) = input.validate()?;
        let hash = self.hasher.hash(&password).await?;
        let user = NewUser::new(username, email, hash);
        self.store.insert_user(&user).await?;
        Ok(user.into_user())
    }

    /// The resource-owner password grant: `login` is a username or an email.
    ///
    /// Unknown accounts are verified against a dummy hash so that "no such
    /// user" and "wrong password" cost the same and read the same.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        requested_scope: Option<&str>,
    ) -> Result<LoginGrant, AuthError> {
        if password.len() > MAX_LOGIN_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let user = self.find_by_login(login).await?;
        let verification = self
            .hasher
            .verify(user.as_ref().map(|u| u.password_hash.as_str()), password)
            .await?;
        let user = match user {
            Some(user) if verification.matches => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        if verification.needs_rehash {
            self.rehash(&user, password).await;
        }
        let scope = self.grant_scope(requested_scope);
        let access = self.issue(&user, None, scope.clone())?;
        Ok(LoginGrant {
            user,
            access,
            scope,
        })
    }

    /// Resolves a bearer token to its (existing, enabled) user.
    pub async fn current_user(&self, access_token: &str) -> Result<User, AuthError> {
        let claims = self.tokens.verify(access_token)?;
        let id = Uuid::parse_str(&claims.sub).map_err(|_| TokenError::Malformed)?;
        match self.store.find_user_by_id(id).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(TokenError::UnknownUser.into()),
        }
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<User>, AuthError> {
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
    fn grant_scope(&self, requested: Option<&str>) -> Option<String> {
        let granted: BTreeSet<&str> = requested?
            .split(' ')
            .filter(|s| self.allowed_scopes.contains(*s))
            .collect();
        (!granted.is_empty()).then(|| granted.into_iter().collect::<Vec<_>>().join(" "))
    }

    fn issue(
        &self,
        user: &User,
        sid: Option<Uuid>,
        scope: Option<String>,
    ) -> Result<IssuedToken, AuthError> {
        self.tokens
            .issue(user, sid, scope)
            .map_err(|e| AuthError::Internal(format!("signing failed: {e}")))
    }
}
