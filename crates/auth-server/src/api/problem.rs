//! The one mapping from errors to HTTP responses.
//!
//! Two families, as API.md says: RFC 6749 5.2 JSON for the OAuth endpoints
//! and RFC 9457 problem details everywhere else. Internal details are logged
//! here (with the request's trace span) and never sent.

use auth_core::{AuthError, FieldError, TokenError};
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use super::body::BodyError;

/// `WWW-Authenticate` when no bearer credentials were sent (RFC 6750 3).
pub const WWW_AUTHENTICATE_MISSING: &str = r#"Bearer realm="tessera""#;
/// `WWW-Authenticate` when a bearer token was sent but is not valid.
pub const WWW_AUTHENTICATE_INVALID: &str = r#"Bearer realm="tessera", error="invalid_token""#;
/// Seconds a shed client is asked to wait.
const RETRY_AFTER_BUSY: &str = "1";

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn retry_after(wait: std::time::Duration) -> String {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        .max(1)
        .to_string()
}

/// One broken input rule (API.md's 422 `errors` entries).
#[derive(Debug, Clone, Object)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` means the status says it all.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<FieldProblem>>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        }
    }
}

/// Every non-OAuth error response.
#[derive(Debug, ApiResponse)]
pub enum ProblemResponse {
    /// Malformed request (bad JSON, JSON that is not an object).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing or invalid bearer token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>, #[oai(header = "WWW-Authenticate")] String),
    /// Authenticated, but not allowed (e.g. wrong current password; a token
    /// without the scope `/userinfo` needs, with `WWW-Authenticate`).
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(
        Json<Problem>,
        #[oai(header = "WWW-Authenticate")] Option<String>,
    ),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 405, content_type = "application/problem+json")]
    MethodNotAllowed(Json<Problem>),
    /// Username or email already taken.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// Body over the size limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// Body is not JSON.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Input broke validation rules; `errors` lists each.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// Throttled; retry after the given seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] String),
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// Store down or the server is shedding load.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] Option<String>),
}

impl ProblemResponse {
    pub fn from_status(status: StatusCode, detail: impl Into<String>) -> Self {
        let problem = Json(Problem::new(status, detail));
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest(problem),
            StatusCode::UNAUTHORIZED => {
                Self::Unauthorized(problem, WWW_AUTHENTICATE_MISSING.into())
            }
            StatusCode::FORBIDDEN => Self::Forbidden(problem, None),
            StatusCode::NOT_FOUND => Self::NotFound(problem),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed(problem),
            StatusCode::CONFLICT => Self::Conflict(problem),
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(problem),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(problem),
            StatusCode::UNPROCESSABLE_ENTITY => Self::Unprocessable(problem),
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable(problem, None),
            _ => Self::Internal(Json(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
            ))),
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the request did not pass validation",
        );
        problem.errors = Some(
            errors
                .into_iter()
                .map(|e| FieldProblem {
                    field: e.field.to_owned(),
                    message: e.message,
                })
                .collect(),
        );
        Self::Unprocessable(Json(problem))
    }

    /// 429 with `Retry-After` (throttled account or rate-limited address).
    pub fn too_many_requests(detail: impl Into<String>, wait: std::time::Duration) -> Self {
        Self::TooManyRequests(
            Json(Problem::new(StatusCode::TOO_MANY_REQUESTS, detail)),
            retry_after(wait),
        )
    }

    pub fn invalid_token(reason: TokenError) -> Self {
        Self::Unauthorized(
            Json(Problem::new(StatusCode::UNAUTHORIZED, reason.to_string())),
            WWW_AUTHENTICATE_INVALID.into(),
        )
    }
}

impl From<AuthError> for ProblemResponse {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Validation(errors) => Self::validation(errors.0),
            AuthError::Conflict(field) => Self::from_status(
                StatusCode::CONFLICT,
                format!("the {field} is already taken"),
            ),
            AuthError::InvalidToken(reason) => Self::invalid_token(reason),
            AuthError::InsufficientScope(scope) => Self::Forbidden(
                Json(Problem::new(StatusCode::FORBIDDEN, err.to_string())),
                Some(format!(
                    r#"Bearer realm="tessera", error="insufficient_scope", scope="{scope}""#
                )),
            ),
            AuthError::InvalidCredentials => {
                Self::from_status(StatusCode::FORBIDDEN, "the current password is wrong")
            }
            AuthError::AccountDisabled => {
                Self::from_status(StatusCode::FORBIDDEN, "the account is disabled")
            }
            AuthError::InvalidRefreshToken
            | AuthError::InvalidGrant(_)
            | AuthError::InvalidScope(_)
            | AuthError::UnauthorizedClient
            | AuthError::UnsupportedGrantType => {
                Self::from_status(StatusCode::BAD_REQUEST, err.to_string())
            }
            AuthError::InvalidClient { .. } => {
                Self::from_status(StatusCode::UNAUTHORIZED, err.to_string())
            }
            AuthError::UserNotFound | AuthError::ClientNotFound(_) => {
                Self::from_status(StatusCode::NOT_FOUND, err.to_string())
            }
            AuthError::ClientConfigured(_) => {
                Self::from_status(StatusCode::CONFLICT, err.to_string())
            }
            AuthError::Throttled { retry_after: wait }
            | AuthError::RateLimited { retry_after: wait } => {
                Self::too_many_requests(err.to_string(), wait)
            }
            AuthError::AlreadyVerified => Self::from_status(StatusCode::CONFLICT, err.to_string()),
            AuthError::EmailNotVerified | AuthError::SecondFactorRequired => {
                Self::from_status(StatusCode::FORBIDDEN, err.to_string())
            }
            AuthError::InvalidCode | AuthError::PasskeyRefused(_) => {
                Self::from_status(StatusCode::UNAUTHORIZED, err.to_string())
            }
            AuthError::CeremonyExpired => Self::from_status(StatusCode::GONE, err.to_string()),
            AuthError::FactorNotFound | AuthError::SessionNotFound | AuthError::ConsentNotFound => {
                Self::from_status(StatusCode::NOT_FOUND, err.to_string())
            }
            AuthError::NoSecondFactor | AuthError::PasskeysUnavailable => {
                Self::from_status(StatusCode::CONFLICT, err.to_string())
            }
            AuthError::Overloaded => Self::Unavailable(
                Json(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    err.to_string(),
                )),
                Some(RETRY_AFTER_BUSY.into()),
            ),
            AuthError::StoreUnavailable => Self::Unavailable(
                Json(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is temporarily unavailable",
                )),
                Some(RETRY_AFTER_BUSY.into()),
            ),
            AuthError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::from_status(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

impl From<BodyError> for ProblemResponse {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::UnsupportedMediaType => Self::from_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
            ),
            BodyError::TooLarge { limit } => Self::from_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes"),
            ),
            BodyError::Malformed(detail) => Self::from_status(StatusCode::BAD_REQUEST, detail),
            BodyError::Missing(errors) => Self::validation(errors),
            BodyError::Io => {
                Self::from_status(StatusCode::BAD_REQUEST, "the body could not be read")
            }
        }
    }
}

/// RFC 6749 section 5.2 error body.
#[derive(Debug, Clone, Object)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
}

/// Every error of `/token`, `/revoke` and `/introspect`.
#[derive(Debug, ApiResponse)]
pub enum OAuthError {
    /// `invalid_request`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
    /// `invalid_client`: a registered client failed to authenticate
    /// (`WWW-Authenticate: Basic` when it used Basic).
    #[oai(status = 401)]
    InvalidClient(
        Json<OAuthErrorBody>,
        #[oai(header = "WWW-Authenticate")] Option<String>,
    ),
    /// `temporarily_unavailable`: throttled.
    #[oai(status = 429)]
    TooManyRequests(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] String),
    /// `server_error`.
    #[oai(status = 500)]
    Internal(Json<OAuthErrorBody>),
    /// `temporarily_unavailable`: store down or hashing queue full.
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] String),
}

fn oauth_body(error: &str, description: impl Into<String>) -> Json<OAuthErrorBody> {
    Json(OAuthErrorBody {
        error: error.into(),
        error_description: description.into(),
    })
}

impl OAuthError {
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::BadRequest(oauth_body("invalid_request", description))
    }

    /// 429 `temporarily_unavailable` with `Retry-After`.
    pub fn too_many_requests(description: impl Into<String>, wait: std::time::Duration) -> Self {
        Self::TooManyRequests(
            oauth_body("temporarily_unavailable", description),
            retry_after(wait),
        )
    }

    pub fn unsupported_grant_type() -> Self {
        Self::BadRequest(oauth_body(
            "unsupported_grant_type",
            "supported grant types: authorization_code, refresh_token, password, client_credentials",
        ))
    }
}

impl From<AuthError> for OAuthError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials => {
                Self::BadRequest(oauth_body("invalid_grant", "invalid username or password"))
            }
            AuthError::AccountDisabled => {
                Self::BadRequest(oauth_body("invalid_grant", "the account is disabled"))
            }
            AuthError::Throttled { retry_after: wait }
            | AuthError::RateLimited { retry_after: wait } => {
                Self::too_many_requests(err.to_string(), wait)
            }
            AuthError::EmailNotVerified => Self::BadRequest(oauth_body(
                "invalid_grant",
                "the email address is not verified yet: follow the link in the message sent to it",
            )),
            AuthError::SecondFactorRequired => Self::BadRequest(oauth_body(
                "invalid_grant",
                "this account has a second factor, which the password grant cannot ask for: \
                 sign in through the browser (authorization code flow with PKCE)",
            )),
            AuthError::AlreadyVerified
            | AuthError::InvalidCode
            | AuthError::CeremonyExpired
            | AuthError::FactorNotFound
            | AuthError::SessionNotFound
            | AuthError::ConsentNotFound
            | AuthError::NoSecondFactor
            | AuthError::PasskeysUnavailable
            | AuthError::PasskeyRefused(_) => {
                Self::BadRequest(oauth_body("invalid_request", err.to_string()))
            }
            AuthError::InvalidRefreshToken | AuthError::InvalidGrant(_) => {
                Self::BadRequest(oauth_body("invalid_grant", err.to_string()))
            }
            AuthError::InvalidClient { basic } => Self::InvalidClient(
                oauth_body("invalid_client", "client authentication failed"),
                basic.then(|| "Basic realm=\"tessera\"".to_owned()),
            ),
            AuthError::UnauthorizedClient => {
                Self::BadRequest(oauth_body("unauthorized_client", err.to_string()))
            }
            AuthError::InvalidScope(_) => {
                Self::BadRequest(oauth_body("invalid_scope", err.to_string()))
            }
            AuthError::UnsupportedGrantType => Self::unsupported_grant_type(),
            AuthError::UserNotFound => {
                Self::BadRequest(oauth_body("invalid_grant", "invalid username or password"))
            }
            AuthError::ClientNotFound(_) | AuthError::ClientConfigured(_) => {
                Self::BadRequest(oauth_body("invalid_request", err.to_string()))
            }
            AuthError::InsufficientScope(_) => {
                Self::BadRequest(oauth_body("invalid_scope", err.to_string()))
            }
            AuthError::InvalidToken(_) => Self::BadRequest(oauth_body(
                "invalid_grant",
                "the grant is invalid, expired or revoked",
            )),
            AuthError::Validation(errors) => {
                Self::BadRequest(oauth_body("invalid_request", errors.to_string()))
            }
            AuthError::Conflict(_) => Self::invalid_request("conflicting request"),
            AuthError::Overloaded => Self::Unavailable(
                oauth_body("temporarily_unavailable", err.to_string()),
                RETRY_AFTER_BUSY.into(),
            ),
            AuthError::StoreUnavailable => Self::Unavailable(
                oauth_body(
                    "temporarily_unavailable",
                    "the service is temporarily unavailable",
                ),
                RETRY_AFTER_BUSY.into(),
            ),
            AuthError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::Internal(oauth_body("server_error", "internal server error"))
            }
        }
    }
}

impl From<BodyError> for OAuthError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::UnsupportedMediaType => {
                Self::invalid_request("the body must be application/x-www-form-urlencoded")
            }
            BodyError::TooLarge { limit } => {
                Self::invalid_request(format!("the body is larger than {limit} bytes"))
            }
            BodyError::Malformed(detail) => Self::invalid_request(detail),
            BodyError::Missing(errors) => Self::invalid_request(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            BodyError::Io => Self::invalid_request("the body could not be read"),
        }
    }
}

/// Maps errors raised by the framework before a handler runs (no route,
/// wrong method, missing bearer credentials, ...) to problem details.
pub fn framework_error(err: poem::Error) -> poem::Response {
    use poem::IntoResponse;
    if err.is_from_response() {
        // A handler's own error response (already mapped above): keep it.
        return err.into_response();
    }
    if err.is::<poem_openapi::error::AuthorizationError>() {
        return ProblemResponse::from_status(
            StatusCode::UNAUTHORIZED,
            "bearer credentials are required",
        )
        .into_response();
    }
    let status = err.status();
    let detail = match status {
        StatusCode::NOT_FOUND => "no such resource".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this resource".to_owned(),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "unhandled server error");
            "internal server error".to_owned()
        }
        // Framework messages for client errors name the problem, never a secret.
        _ => err.to_string(),
    };
    ProblemResponse::from_status(status, detail).into_response()
}
