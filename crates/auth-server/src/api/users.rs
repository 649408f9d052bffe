//! Accounts: register, and the current user.

use std::sync::Arc;

use auth_core::{Email, Registration, Store, User, UserSummary};
use chrono::{DateTime, Utc};
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};
use uuid::Uuid;

use poem::Request;

use super::body::JsonObject;
use super::problem::ProblemResponse;
use super::AppState;
use crate::mail::request_locales;

#[derive(Tags)]
enum UsersTag {
    /// Registration and the signed-in user.
    Accounts,
}

/// An access token from `/token`. Swagger UI's Authorize button runs the
/// password flow against `/token` and sends the token as `Bearer`.
#[derive(SecurityScheme)]
#[oai(ty = "oauth2", flows(password(token_url = "/token")))]
pub struct BearerToken(Bearer);

/// Registration input.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct RegisterRequest {
    /// 3–32 characters of `A-Z a-z 0-9 _ . -` (after NFKC); unique ignoring case.
    #[oai(validator(min_length = 3, max_length = 32))]
    pub username: String,
    /// A valid address of at most 254 characters; unique ignoring case.
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: String,
    /// 8–128 characters, not common, not equal to the username or email.
    #[oai(write_only, validator(min_length = 8, max_length = 128))]
    pub password: String,
}

/// The public view of an account. `Serialize` writes what `ToJSON` does
/// (for [`DirectJson`](super::direct_json::DirectJson) pages of accounts).
#[derive(Debug, Object, serde::Serialize)]
pub struct PublicUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// Whether the address was proved by following the link sent to it.
    pub email_verified: bool,
    #[serde(serialize_with = "super::direct_json::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<User> for PublicUser {
    fn from(user: User) -> Self {
        UserSummary::from(user).into()
    }
}

impl From<UserSummary> for PublicUser {
    fn from(user: UserSummary) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            email_verified: user.email_verified,
            created_at: user.created_at,
        }
    }
}

/// Password change input.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct ChangePasswordRequest {
    #[oai(write_only, validator(min_length = 1))]
    pub current_password: String,
    /// The same rules as at registration.
    #[oai(write_only, validator(min_length = 8, max_length = 128))]
    pub new_password: String,
}

#[derive(Debug, ApiResponse)]
pub enum PasswordChanged {
    /// Changed; every other session of the user has ended.
    #[oai(status = 204)]
    NoContent,
}

/// Email change input.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct ChangeEmailRequest {
    #[oai(write_only, validator(min_length = 1))]
    pub current_password: String,
    /// The new address; it must not belong to another account.
    #[oai(validator(min_length = 3, max_length = 254))]
    pub new_email: String,
}

/// `POST /password/forgot` input.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct ForgotPasswordRequest {
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: String,
}

/// What an accepted mail request says (the same whatever happened next).
#[derive(Debug, Object)]
pub struct MailAccepted {
    pub detail: String,
}

#[derive(Debug, ApiResponse)]
pub enum MailQueued {
    /// Accepted: a message is on its way (or, for an address no account
    /// has, nothing is sent; the answer is the same).
    #[oai(status = 202)]
    Accepted(Json<MailAccepted>),
}

fn accepted(detail: &str) -> MailQueued {
    MailQueued::Accepted(Json(MailAccepted {
        detail: detail.into(),
    }))
}

#[derive(Debug, ApiResponse)]
pub enum RegisterResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<PublicUser>, #[oai(header = "Location")] String),
}

pub struct UsersApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> UsersApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(tag = "UsersTag::Accounts")]
impl<S: Store> UsersApi<S> {
    /// Register a new account.
    #[oai(path = "/users", method = "post")]
    async fn register(
        &self,
        req: &Request,
        body: JsonObject<RegisterRequest>,
    ) -> Result<RegisterResponse, ProblemResponse> {
        let [username, email, password] =
            body.result?.strings(["username", "email", "password"])?;
        let user = self
            .state
            .service
            .register(
                &Registration {
                    username,
                    email,
                    password,
                },
                &request_locales(req),
            )
            .await?;
        Ok(RegisterResponse::Created(
            Json(user.into()),
            "/users/me".into(),
        ))
    }

    /// The account the bearer token belongs to.
    #[oai(path = "/users/me", method = "get")]
    async fn me(&self, auth: BearerToken) -> Result<Json<PublicUser>, ProblemResponse> {
        let user = self.state.service.current_user(&auth.0.token).await?;
        Ok(Json(user.into()))
    }

    /// Change the password. Every other session of the user is revoked; this
    /// one stays valid.
    #[oai(path = "/users/me/password", method = "post")]
    async fn change_password(
        &self,
        req: &Request,
        auth: BearerToken,
        body: JsonObject<ChangePasswordRequest>,
    ) -> Result<PasswordChanged, ProblemResponse> {
        // Authenticate before looking at the body: a bad token is 401 whatever was sent.
        let service = &self.state.service;
        let (session, user) = service.current_session(&auth.0.token).await?;
        let [current, new] = body.result?.strings(["current_password", "new_password"])?;
        service
            .change_password(&session, &user, &current, &new, &request_locales(req))
            .await?;
        Ok(PasswordChanged::NoContent)
    }

    /// Send the verification message again (at most `mail.resend_limit`
    /// per account; 429 with `Retry-After` beyond). 409 when the address is
    /// verified already.
    #[oai(path = "/users/me/email/verification", method = "post")]
    async fn resend_verification(
        &self,
        req: &Request,
        auth: BearerToken,
    ) -> Result<MailQueued, ProblemResponse> {
        let service = &self.state.service;
        let user = service.current_user(&auth.0.token).await?;
        service
            .resend_verification(&user, &request_locales(req))
            .await?;
        Ok(accepted("a verification message is on its way"))
    }

    /// Change the email address: the current password and the new address.
    /// A link goes to the new address; the account switches when it is
    /// followed, and the old address is told.
    #[oai(path = "/users/me/email", method = "post")]
    async fn change_email(
        &self,
        req: &Request,
        auth: BearerToken,
        body: JsonObject<ChangeEmailRequest>,
    ) -> Result<MailQueued, ProblemResponse> {
        let service = &self.state.service;
        let user = service.current_user(&auth.0.token).await?;
        let [current, new_email] = body.result?.strings(["current_password", "new_email"])?;
        service
            .request_email_change(&user, &current, &new_email, &request_locales(req))
            .await?;
        Ok(accepted(
            "a confirmation link is on its way to the new address",
        ))
    }

    /// Ask for a password-reset link. Always 202 with the same body, in the
    /// same time, whether an account has the address or not; the message is
    /// written after the answer. Limited per address (known or not) and per
    /// client address: 429 with `Retry-After`.
    #[oai(path = "/password/forgot", method = "post")]
    async fn forgot_password(
        &self,
        req: &Request,
        body: JsonObject<ForgotPasswordRequest>,
    ) -> Result<MailQueued, ProblemResponse> {
        let [email] = body.result?.strings(["email"])?;
        let client = self.state.rate_limiter.client(req).to_string();
        let email = self
            .state
            .service
            .admit_password_reset(&email, Some(&client))
            .await?;
        send_reset_later(&self.state, email, request_locales(req));
        Ok(accepted(FORGOT_ACCEPTED))
    }
}

/// What `/password/forgot` answers, for every address.
pub const FORGOT_ACCEPTED: &str =
    "if an account has this address, a message with a reset link is on its way";

/// Looks the address up and queues the reset message after the answer has
/// gone — a random 10–50 ms later, so that the work a known address causes
/// never competes with the answer for the CPU, and the response time says
/// nothing about whether an account has the address.
pub fn send_reset_later<S: Store>(state: &Arc<AppState<S>>, email: Email, locales: Vec<String>) {
    use rand::Rng as _;
    let state = Arc::clone(state);
    let delay = std::time::Duration::from_millis(rand::thread_rng().gen_range(10..=50));
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Err(e) = state.service.send_password_reset(&email, &locales).await {
            tracing::warn!(error = %e, "queueing a password-reset message failed");
        }
    });
}
