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

/// RFC 8414 authorization server metadata.
#[derive(Debug, Object)]
pub struct ServerMetadata {
    pub issuer: String,
    /// Where apps send people to sign in (authorization code with PKCE).
    pub authorization_endpoint: String,
    pub token_endpoint: String,
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
    /// The scopes clients may request (possibly none).
    pub scopes_supported: Vec<String>,
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
    /// Authorization server metadata (RFC 8414).
    #[oai(path = "/.well-known/oauth-authorization-server", method = "get")]
    async fn metadata(&self) -> Json<ServerMetadata> {
        let tokens = self.state.service.tokens().config();
        let issuer = tokens.issuer.clone();
        let auth_methods = || {
            ["client_secret_basic", "client_secret_post", "none"]
                .map(String::from)
                .to_vec()
        };
        let mut grant_types = vec!["authorization_code".to_owned(), "refresh_token".into()];
        if self.state.service.policy().oauth.password_grant {
            grant_types.push("password".into());
        }
        Json(ServerMetadata {
            authorization_endpoint: format!("{issuer}/authorize"),
            token_endpoint: format!("{issuer}/token"),
            revocation_endpoint: format!("{issuer}/revoke"),
            introspection_endpoint: format!("{issuer}/introspect"),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            grant_types_supported: grant_types,
            token_endpoint_auth_methods_supported: auth_methods(),
            revocation_endpoint_auth_methods_supported: auth_methods(),
            introspection_endpoint_auth_methods_supported: auth_methods(),
            response_types_supported: vec!["code".into()],
            response_modes_supported: vec!["query".into()],
            code_challenge_methods_supported: vec!["S256".into()],
            authorization_response_iss_parameter_supported: true,
            scopes_supported: self.state.scopes.clone(),
            issuer,
        })
    }

    /// Public keys that verify access tokens (RFC 7517). Empty with HS256.
    #[oai(path = "/.well-known/jwks.json", method = "get")]
    async fn jwks(&self) -> Json<JwkSet> {
        Json(JwkSet {
            keys: self.state.jwks.clone(),
        })
    }
}
