//! Discovery: RFC 8414 server metadata and the RFC 7517 key set.

use std::sync::Arc;

use auth_core::Store;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::AppState;

#[derive(Tags)]
enum DiscoveryTag {
    /// Metadata for clients and for services that verify access tokens.
    Discovery,
}

/// Server metadata: the OpenID Connect Discovery 1.0 document, which is
/// also the RFC 8414 document (one set of values, two addresses).
#[derive(Debug, Clone, Object)]
pub struct ServerMetadata {
    /// `server.public_url`, byte for byte.
    pub issuer: String,
    /// Where apps send people to sign in (authorization code with PKCE).
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    /// RP-initiated logout.
    pub end_session_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// `["code"]`.
    pub response_types_supported: Vec<String>,
    /// `["query"]`.
    pub response_modes_supported: Vec<String>,
    /// `["S256"]`: PKCE is required for every client; `plain` is refused.
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: every authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// The scopes clients may request.
    pub scopes_supported: Vec<String>,
    /// `["public"]`: `sub` is the user id, the same for every client.
    pub subject_types_supported: Vec<String>,
    /// The algorithm ID tokens are signed with (`RS256` by default).
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub claims_supported: Vec<String>,
    /// `false`: the `claims` request parameter is not supported.
    pub claims_parameter_supported: bool,
    /// `false`: request objects are not supported.
    pub request_parameter_supported: bool,
    /// `false` (Discovery's default would be `true`).
    pub request_uri_parameter_supported: bool,
    pub prompt_values_supported: Vec<String>,
    /// The languages of the hosted pages.
    pub ui_locales_supported: Vec<String>,
}

/// The scopes every deployment supports (OpenID Connect's), whatever clients add.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// What ID tokens and `/userinfo` may carry.
const CLAIMS_SUPPORTED: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "amr",
    "sid",
    "preferred_username",
    "email",
    "email_verified",
];

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// A public verification key (RFC 7517).
#[derive(Debug, Clone, Object)]
pub struct PublicJwk {
    pub kty: String,
    pub kid: String,
    pub alg: String,
    #[oai(rename = "use")]
    pub key_use: String,
    /// OKP and EC: curve name.
    #[oai(skip_serializing_if_is_none)]
    pub crv: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub y: Option<String>,
    /// RSA modulus and exponent.
    #[oai(skip_serializing_if_is_none)]
    pub n: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub e: Option<String>,
}

impl From<&auth_core::PublicJwk> for PublicJwk {
    fn from(key: &auth_core::PublicJwk) -> Self {
        Self {
            kty: key.kty.clone(),
            kid: key.kid.clone(),
            alg: key.alg.clone(),
            key_use: key.key_use.clone(),
            crv: key.crv.clone(),
            x: key.x.clone(),
            y: key.y.clone(),
            n: key.n.clone(),
            e: key.e.clone(),
        }
    }
}

#[derive(Debug, Object)]
pub struct JwkSet {
    pub keys: Vec<PublicJwk>,
}

pub struct DiscoveryApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> DiscoveryApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(tag = "DiscoveryTag::Discovery")]
impl<S: Store> DiscoveryApi<S> {
    /// OpenID Connect Discovery 1.0 provider metadata.
    #[oai(path = "/.well-known/openid-configuration", method = "get")]
    async fn openid_configuration(&self) -> Json<ServerMetadata> {
        Json(self.document())
    }

    /// Authorization server metadata (RFC 8414): the same values as
    /// `/.well-known/openid-configuration`.
    #[oai(path = "/.well-known/oauth-authorization-server", method = "get")]
    async fn metadata(&self) -> Json<ServerMetadata> {
        Json(self.document())
    }

    /// Public keys that verify access tokens and ID tokens (RFC 7517). The
    /// HS256 secret is never published.
    #[oai(path = "/.well-known/jwks.json", method = "get")]
    async fn jwks(&self) -> Json<JwkSet> {
        Json(JwkSet {
            keys: self.state.jwks.clone(),
        })
    }
}

impl<S: Store> DiscoveryApi<S> {
    fn document(&self) -> ServerMetadata {
        let service = &self.state.service;
        let issuer = service.tokens().config().issuer.clone();
        let auth_methods = || strings(&["client_secret_basic", "client_secret_post", "none"]);
        let mut grant_types =
            strings(&["authorization_code", "refresh_token", "client_credentials"]);
        if service.policy().oauth.password_grant {
            grant_types.push("password".into());
        }
        let mut scopes = strings(&OIDC_SCOPES);
        for scope in &self.state.scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        let id_token_algs = service
            .id_tokens()
            .map(|ids| vec![ids.algorithm().as_str().to_owned()])
            .unwrap_or_default();
        ServerMetadata {
            authorization_endpoint: format!("{issuer}/authorize"),
            token_endpoint: format!("{issuer}/token"),
            userinfo_endpoint: format!("{issuer}/userinfo"),
            end_session_endpoint: format!("{issuer}/logout"),
            revocation_endpoint: format!("{issuer}/revoke"),
            introspection_endpoint: format!("{issuer}/introspect"),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            grant_types_supported: grant_types,
            token_endpoint_auth_methods_supported: auth_methods(),
            revocation_endpoint_auth_methods_supported: auth_methods(),
            introspection_endpoint_auth_methods_supported: auth_methods(),
            response_types_supported: strings(&["code"]),
            response_modes_supported: strings(&["query"]),
            code_challenge_methods_supported: strings(&["S256"]),
            authorization_response_iss_parameter_supported: true,
            scopes_supported: scopes,
            subject_types_supported: strings(&["public"]),
            id_token_signing_alg_values_supported: id_token_algs,
            claims_supported: strings(&CLAIMS_SUPPORTED),
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            prompt_values_supported: strings(&["none", "login", "consent", "create"]),
            ui_locales_supported: strings(&["en"]),
            issuer,
        }
    }
}
