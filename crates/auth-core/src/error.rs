//! The one error type of the domain services.

use crate::store::{StoreError, UniqueField};
use crate::token::TokenError;
use crate::validation::ValidationErrors;

/// Everything an [`AuthService`](crate::AuthService) operation can fail with.
///
/// The HTTP layer maps each variant to exactly one response; the messages
/// here are safe to show (they never contain secrets or driver text).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The input broke one or more rules; nothing was changed.
    #[error("invalid input: {0}")]
    Validation(ValidationErrors),
    /// A unique field (username or email) is already taken.
    #[error("the {0} is already taken")]
    Conflict(UniqueField),
    /// Wrong login or password. Deliberately says nothing about which.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Client authentication failed (RFC 6749 §5.2 `invalid_client`, 401);
    /// `basic` when the client used HTTP Basic, which the answer must name.
    #[error("client authentication failed")]
    InvalidClient { basic: bool },
    /// The client may not use this grant.
    #[error("the client is not allowed to use this grant type")]
    UnauthorizedClient,
    /// The grant is switched off (`oauth.password_grant = false`) or unknown.
    #[error("the grant type is not supported")]
    UnsupportedGrantType,
    /// A scope the client may not have (RFC 6749 §5.2 `invalid_scope`).
    #[error("the client may not request the scope `{0}`")]
    InvalidScope(String),
    /// An authorization code that fails a check (RFC 6749 `invalid_grant`).
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// A refresh token that is unknown, expired, used or of an ended session.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    /// No account has this username or email (admin operations).
    #[error("no such user")]
    UserNotFound,
    /// No client has this id (admin operations).
    #[error("no client `{0}`")]
    ClientNotFound(String),
    /// The client is defined in configuration, which the CLI does not edit.
    #[error("client `{0}` is defined in the configuration file; change it there")]
    ClientConfigured(String),
    /// The account exists but may not log in.
    #[error("the account is disabled")]
    AccountDisabled,
    /// An access token was missing its user, or failed verification.
    #[error("invalid token: {0}")]
    InvalidToken(#[from] TokenError),
    /// The access token is valid but was not granted this scope (RFC 6750
    /// §3.1 `insufficient_scope`, 403).
    #[error("the token was not granted the `{0}` scope")]
    InsufficientScope(&'static str),
    /// Too many failed logins for this account: locked for `retry_after`.
    #[error("too many failed logins; try again later")]
    Throttled { retry_after: std::time::Duration },
    /// Too many requests of one kind (resending mail, password resets):
    /// 429 with `Retry-After`.
    #[error("too many requests; try again later")]
    RateLimited { retry_after: std::time::Duration },
    /// The address is verified already; there is nothing to resend.
    #[error("the email address is already verified")]
    AlreadyVerified,
    /// `accounts.require_verified_email`: the right password, but the
    /// address is not verified yet.
    #[error("the email address is not verified yet")]
    EmailNotVerified,
    /// The account has a second factor; the password grant cannot ask for
    /// it, so it refuses (sign in through the browser instead).
    #[error("this account has a second factor: sign in through the browser")]
    SecondFactorRequired,
    /// A wrong, reused or malformed second-factor code.
    #[error("the code is not valid")]
    InvalidCode,
    /// A sign-in step, enrolment or passkey ceremony that expired, was
    /// finished already, or belongs to someone else.
    #[error("this step expired or was already completed")]
    CeremonyExpired,
    /// No such factor of this account.
    #[error("no such factor")]
    FactorNotFound,
    /// No such session of this account.
    #[error("no such session")]
    SessionNotFound,
    /// The account has not allowed this client anything.
    #[error("this client has no consent to withdraw")]
    ConsentNotFound,
    /// Recovery codes need a factor to recover.
    #[error("the account has no second factor")]
    NoSecondFactor,
    /// The public URL cannot carry passkeys (an IP address).
    #[error("passkeys are not available on this server")]
    PasskeysUnavailable,
    /// The authenticator's answer failed a WebAuthn check.
    #[error("the passkey was not accepted: {0}")]
    PasskeyRefused(String),
    /// The password-hashing queue is full; the caller should retry later.
    #[error("the server is busy hashing passwords; retry shortly")]
    Overloaded,
    /// The store did not answer (down, timed out, pool exhausted).
    #[error("the store is unavailable")]
    StoreUnavailable,
    /// A bug or an unexpected failure; details are logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(field) => AuthError::Conflict(field),
            StoreError::Unavailable(_) => AuthError::StoreUnavailable,
            StoreError::NotFound => AuthError::Internal("store record not found".into()),
            StoreError::Other(detail) => AuthError::Internal(detail),
        }
    }
}

impl From<ValidationErrors> for AuthError {
    fn from(errors: ValidationErrors) -> Self {
        AuthError::Validation(errors)
    }
}
