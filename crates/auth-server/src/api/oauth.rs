//! OAuth 2.0 endpoints: token (RFC 6749), revocation (RFC 7009),
//! introspection (RFC 7662). Every response is `no-store` (middleware).

use std::sync::Arc;

use auth_core::{ClientGrant, GrantType, LoginGrant, Store, TokenKind};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use super::body::{BodyError, FormParams, UrlEncoded};
use super::client_auth;
use super::problem::OAuthError;
use super::AppState;
use crate::metrics;

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
    /// `authorization_code`, `refresh_token`, `client_credentials` or `password`.
    #[oai(validator(min_length = 1))]
    pub grant_type: String,
    /// The authorization code (authorization_code grant).
    #[oai(write_only)]
    pub code: Option<String>,
    /// The redirect URI the code was sent to (authorization_code grant).
    pub redirect_uri: Option<String>,
    /// The PKCE verifier (authorization_code grant).
    #[oai(write_only)]
    pub code_verifier: Option<String>,
    /// Username or email (password grant).
    pub username: Option<String>,
    /// Password (password grant).
    #[oai(write_only)]
    pub password: Option<String>,
    /// Space-separated scopes to request (password and client_credentials
    /// grants; by default a client's own token carries every scope it is
    /// allowed but the user-facing ones).
    pub scope: Option<String>,
    /// The refresh token (refresh_token grant).
    #[oai(write_only)]
    pub refresh_token: Option<String>,
    /// The client (`client_secret_post` and `none`; with Basic it may be
    /// repeated here). Optional for v1's implicit public client.
    pub client_id: Option<String>,
    /// `client_secret_post`. Prefer HTTP Basic (`client_secret_basic`).
    #[oai(write_only)]
    pub client_secret: Option<String>,
}

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Object)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one. From a code only with
    /// `offline_access` and a client allowed `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    /// OpenID Connect ID token (a JWS), when `openid` was granted.
    #[oai(skip_serializing_if_is_none)]
    pub id_token: Option<String>,
}

impl From<ClientGrant> for TokenResponse {
    fn from(grant: ClientGrant) -> Self {
        Self {
            access_token: grant.access_token,
            token_type: "bearer".into(),
            expires_in: grant.expires_in,
            refresh_token: None,
            scope: grant.scope,
            id_token: None,
        }
    }
}

impl From<LoginGrant> for TokenResponse {
    fn from(grant: LoginGrant) -> Self {
        Self {
            access_token: grant.access.token,
            token_type: "bearer".into(),
            expires_in: grant.access.expires_in,
            refresh_token: grant
                .refresh_issued
                .then(|| grant.refresh.expose().to_owned()),
            scope: grant.scope,
            id_token: grant.id_token,
        }
    }
}

/// A token to revoke or introspect.
#[allow(dead_code)]
#[derive(Object)]
pub struct TokenParam {
    #[oai(write_only, validator(min_length = 1))]
    pub token: String,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    /// A registered client may authenticate (Basic or these two fields).
    pub client_id: Option<String>,
    #[oai(write_only)]
    pub client_secret: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum RevokeResponse {
    /// Revoked, or was not a valid token (RFC 7009 2.2: same answer).
    #[oai(status = 200)]
    Done,
}

/// RFC 7662 section 2.2. Only `active` when the token is not valid.
#[derive(Debug, Default, Object)]
pub struct IntrospectionResponse {
    pub active: bool,
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    /// `bearer` for an access token (its RFC 6749 §5.1 type, as RFC 7662
    /// §2.2 asks), `refresh_token` for a refresh token.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
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

fn hint(form: &FormParams) -> Result<Option<TokenKind>, BodyError> {
    // Unknown hints are ignored (RFC 7009 2.1: the server may search all types).
    Ok(match form.single("token_type_hint")? {
        Some("access_token") => Some(TokenKind::Access),
        Some("refresh_token") => Some(TokenKind::Refresh),
        _ => None,
    })
}

#[OpenApi(tag = "OAuthTag::OAuth")]
impl<S: Store> OAuthApi<S> {
    /// Exchange credentials or a refresh token for tokens.
    #[oai(path = "/token", method = "post")]
    async fn token(
        &self,
        req: &poem::Request,
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
                "code",
                "redirect_uri",
                "code_verifier",
                "client_id",
                "client_secret",
            ],
        )?;
        let service = &self.state.service;
        let grant_type = GrantType::parse(form.required("grant_type")?)
            .ok_or_else(OAuthError::unsupported_grant_type)?;
        let credentials = client_auth::credentials(req, &form)?;
        let client = service.authenticate_client(&credentials).await?;
        service.check_grant(&client, grant_type)?;
        let (grant, record): (_, fn(&'static str)) = match grant_type {
            GrantType::Password => {
                let username = form.required("username")?;
                let password = form.required("password")?;
                let scope = form.single("scope")?;
                (
                    service
                        .login_for(&client, username, password, scope)
                        .await
                        .map(TokenResponse::from),
                    metrics::record_login,
                )
            }
            GrantType::RefreshToken => {
                let token = form.required("refresh_token")?;
                (
                    service
                        .refresh_for(&client, token)
                        .await
                        .map(TokenResponse::from),
                    metrics::record_refresh,
                )
            }
            GrantType::AuthorizationCode => {
                let code = form.required("code")?;
                let redirect_uri = form.single("redirect_uri")?;
                let verifier = form.single("code_verifier")?;
                (
                    service
                        .redeem_code(&client, code, redirect_uri, verifier)
                        .await
                        .map(TokenResponse::from),
                    metrics::record_code_redemption,
                )
            }
            GrantType::ClientCredentials => {
                let scope = form.single("scope")?;
                (
                    service
                        .client_credentials_grant(&client, scope)
                        .await
                        .map(TokenResponse::from),
                    metrics::record_client_credentials,
                )
            }
        };
        match grant {
            Ok(grant) => {
                record("success");
                Ok(Json(grant))
            }
            Err(err) => {
                record(metrics::outcome_of(&err));
                Err(err.into())
            }
        }
    }

    /// Revoke a token (RFC 7009): its whole session ends.
    #[oai(path = "/revoke", method = "post")]
    async fn revoke(
        &self,
        req: &poem::Request,
        body: UrlEncoded<TokenParam>,
    ) -> Result<RevokeResponse, OAuthError> {
        let form = body.result?;
        let token = self.token_param(req, &form).await?;
        self.state.service.revoke(token, hint(&form)?).await?;
        metrics::record_revocation();
        Ok(RevokeResponse::Done)
    }

    /// Introspect a token (RFC 7662).
    #[oai(path = "/introspect", method = "post")]
    async fn introspect(
        &self,
        req: &poem::Request,
        body: UrlEncoded<TokenParam>,
    ) -> Result<Json<IntrospectionResponse>, OAuthError> {
        let form = body.result?;
        let token = self.token_param(req, &form).await?;
        let facts = self.state.service.introspect(token).await?;
        Ok(Json(match facts {
            None => IntrospectionResponse::default(),
            Some(facts) => IntrospectionResponse {
                active: true,
                sub: Some(facts.sub),
                username: facts.username,
                exp: Some(facts.exp),
                iat: Some(facts.iat),
                iss: Some(facts.iss),
                scope: facts.scope,
                token_type: Some(introspected_type(facts.kind).into()),
                client_id: Some(facts.client_id),
            },
        }))
    }
}

impl<S: Store> OAuthApi<S> {
    /// What `/revoke` and `/introspect` share: no repeated parameter, the
    /// client authenticated when it says who it is, and the `token`.
    async fn token_param<'f>(
        &self,
        req: &poem::Request,
        form: &'f FormParams,
    ) -> Result<&'f str, OAuthError> {
        reject_repeats(
            form,
            &["token", "token_type_hint", "client_id", "client_secret"],
        )?;
        self.state
            .service
            .authenticate_client(&client_auth::credentials(req, form)?)
            .await?;
        Ok(form.required("token")?)
    }
}

/// RFC 7662 §2.2: `token_type` is the type RFC 6749 §5.1 would give the
/// token; a refresh token has none there, so it is named for what it is.
fn introspected_type(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Access => "bearer",
        TokenKind::Refresh => "refresh_token",
    }
}
