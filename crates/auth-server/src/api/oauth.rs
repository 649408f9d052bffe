//! OAuth 2.0 endpoints (RFC 6749): the token endpoint.

use std::sync::Arc;

use auth_core::Store;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::body::{BodyError, FormParams, UrlEncoded};
use super::problem::OAuthError;
use super::AppState;

#[derive(Tags)]
enum OAuthTag {
    /// OAuth 2.0 endpoints. Errors follow RFC 6749 section 5.2.
    OAuth,
}

/// Token request (form-encoded). Which fields are required depends on `grant_type`.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct TokenRequest {
    /// `password`.
    pub grant_type: String,
    /// Username or email (password grant).
    pub username: Option<String>,
    #[oai(write_only)]
    pub password: Option<String>,
    /// Space-separated scopes to request.
    pub scope: Option<String>,
    /// Accepted and ignored: clients are public.
    pub client_id: Option<String>,
}

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Object)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
}

pub struct OAuthApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> OAuthApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

/// RFC 6749 3.2: no parameter may appear twice.
fn reject_repeats(form: &FormParams, names: &[&str]) -> Result<(), BodyError> {
    names
        .iter()
        .try_for_each(|name| form.single(name).map(|_| ()))
}

#[OpenApi(tag = "OAuthTag::OAuth")]
impl<S: Store> OAuthApi<S> {
    /// Exchange credentials for tokens (password grant).
    #[oai(path = "/token", method = "post")]
    async fn token(
        &self,
        body: UrlEncoded<TokenRequest>,
    ) -> Result<Json<TokenResponse>, OAuthError> {
        let form = body.result?;
        reject_repeats(
            &form,
            &[
                "grant_type",
                "username",
                "password",
                "scope",
                "refresh_token",
                "client_id",
            ],
        )?;
        match form.required("grant_type")? {
            "password" => {
                let username = form.required("username")?;
                let password = form.required("password")?;
                let grant = self
                    .state
                    .service
                    .login(username, password, form.single("scope")?)
                    .await?;
                Ok(Json(TokenResponse {
                    access_token: grant.access.token,
                    token_type: "bearer".into(),
                    expires_in: grant.access.expires_in,
                    refresh_token: None,
                    scope: grant.scope,
                }))
            }
            _ => Err(OAuthError::unsupported_grant_type()),
        }
    }
}
