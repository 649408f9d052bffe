//! Accounts: register, and the current user.

use std::sync::Arc;

use auth_core::{Registration, Store, User};
use chrono::{DateTime, Utc};
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};
use uuid::Uuid;

use super::body::JsonObject;
use super::problem::ProblemResponse;
use super::AppState;

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

/// The public view of an account.
#[derive(Debug, Object)]
pub struct PublicUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

impl From<User> for PublicUser {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
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
        body: JsonObject<RegisterRequest>,
    ) -> Result<RegisterResponse, ProblemResponse> {
        let [username, email, password] =
            body.result?.strings(["username", "email", "password"])?;
        let user = self
            .state
            .service
            .register(&Registration {
                username,
                email,
                password,
            })
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
        auth: BearerToken,
        body: JsonObject<ChangePasswordRequest>,
    ) -> Result<PasswordChanged, ProblemResponse> {
        // Authenticate before looking at the body: a bad token is 401 whatever was sent.
        let service = &self.state.service;
        let (session, user) = service.current_session(&auth.0.token).await?;
        let [current, new] = body.result?.strings(["current_password", "new_password"])?;
        service
            .change_password(&session, &user, &current, &new)
            .await?;
        Ok(PasswordChanged::NoContent)
    }
}
