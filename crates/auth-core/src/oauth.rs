//! The OAuth side of the service: which clients exist, how they prove who
//! they are at the token endpoint, and the authorization-code grant.

use std::time::Duration;

use chrono::Utc;

use crate::audit::{Actor, Audited, Outcome};
use crate::authorize::{pkce_matches, CodeRedemption};
use crate::client::{Client, ClientSource, GrantType, LEGACY_CLIENT_ID};
use crate::error::AuthError;
use crate::id_token::scope_has;
use crate::model::Session;
use crate::refresh::OpaqueToken;
use crate::service::{AuthService, LoginGrant};
use crate::store::Store;

/// The scope that opens the administration API (`/admin/v1`), granted
/// only to a confidential client's own `client_credentials` token.
pub const ADMIN_SCOPE: &str = "admin";

/// Scopes about a person: meaningless in a client's own token.
const USER_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// A client's own access token (`client_credentials`).
#[derive(Debug)]
pub struct ClientGrant {
    pub access_token: String,
    pub expires_in: u64,
    pub scope: Option<String>,
}

/// Clients and grants, from configuration.
#[derive(Debug, Clone)]
pub struct OAuthPolicy {
    /// `[[clients]]`, already validated.
    pub clients: Vec<Client>,
    /// v1 behaviour: password and refresh grants from no client, or from one
    /// that is not registered, act as the implicit public client `tessera`.
    pub legacy_public_client: bool,
    /// `false` turns the password grant off for everyone.
    pub password_grant: bool,
    /// How long an authorization code may be redeemed.
    pub code_ttl: Duration,
    /// How long a pending authorization request waits for the person.
    pub request_ttl: Duration,
    /// A browser sign-in session ends after this long unused...
    pub browser_idle_ttl: Duration,
    /// ...and after this long in any case.
    pub browser_absolute_ttl: Duration,
}

impl Default for OAuthPolicy {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            legacy_public_client: true,
            password_grant: true,
            code_ttl: Duration::from_secs(60),
            request_ttl: Duration::from_secs(10 * 60),
            browser_idle_ttl: Duration::from_secs(24 * 3600),
            browser_absolute_ttl: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// The client credentials of one token-endpoint request. `Debug` hides the secret.
#[derive(Clone, Default)]
pub struct ClientCredentials {
    pub id: Option<String>,
    pub secret: Option<String>,
    /// Whether the credentials came in an `Authorization: Basic` header.
    pub basic: bool,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("basic", &self.basic)
            .finish_non_exhaustive()
    }
}

/// Who is asking at the token endpoint, once authenticated.
#[derive(Debug, Clone)]
pub enum TokenClient {
    /// A registered client that proved itself (or a public one that named itself).
    Registered(Client),
    /// v1's implicit public client (`oauth.legacy_public_client`).
    Legacy,
}

impl TokenClient {
    pub fn id(&self) -> &str {
        match self {
            TokenClient::Registered(client) => &client.id,
            TokenClient::Legacy => LEGACY_CLIENT_ID,
        }
    }
}

impl<S: Store> AuthService<S> {
    /// A client by id: configuration first, then the store.
    pub async fn find_client(&self, id: &str) -> Result<Option<(Client, ClientSource)>, AuthError> {
        if let Some(client) = self.policy().oauth.clients.iter().find(|c| c.id == id) {
            return Ok(Some((client.clone(), ClientSource::Config)));
        }
        Ok(self
            .store()
            .find_client(id)
            .await?
            .map(|client| (client, ClientSource::Store)))
    }

    /// Client authentication (RFC 6749 §2.3): a confidential client must
    /// present its secret, a public one must not. A registered client that
    /// fails is [`AuthError::InvalidClient`]; no client, or an unregistered
    /// one, is the legacy public client, which may use the password and
    /// refresh grants only while `oauth.legacy_public_client` is on.
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<TokenClient, AuthError> {
        let invalid = AuthError::InvalidClient {
            basic: credentials.basic,
        };
        // v1 accepted and ignored whatever client it was sent: an
        // unregistered client (or none) is the implicit one, secret or not;
        // [`check_grant`](Self::check_grant) decides what it may do.
        let Some(id) = credentials.id.as_deref() else {
            return Ok(TokenClient::Legacy);
        };
        let Some((client, _)) = self.find_client(id).await? else {
            return Ok(TokenClient::Legacy);
        };
        let proven = match (&credentials.secret, client.is_public()) {
            (Some(secret), false) => client.secret_matches(secret),
            (None, true) => true,
            _ => false,
        };
        if proven {
            Ok(TokenClient::Registered(client))
        } else {
            Err(invalid)
        }
    }

    /// Whether `client` may use `grant` (password and refresh also depend on
    /// the legacy and password-grant switches).
    pub fn check_grant(&self, client: &TokenClient, grant: GrantType) -> Result<(), AuthError> {
        let oauth = &self.policy().oauth;
        if grant == GrantType::Password && !oauth.password_grant {
            return Err(AuthError::UnsupportedGrantType);
        }
        let allowed = match client {
            TokenClient::Registered(client) => client.allows(grant),
            TokenClient::Legacy => {
                matches!(grant, GrantType::Password | GrantType::RefreshToken)
                    && oauth.legacy_public_client
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::UnauthorizedClient)
        }
    }

    /// The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.6): the
    /// code is spent first, atomically, then checked; a code presented a
    /// second time revokes the session its first use created.
    pub async fn redeem_code(
        &self,
        client: &TokenClient,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<LoginGrant, AuthError> {
        let TokenClient::Registered(client) = client else {
            return Err(AuthError::UnauthorizedClient);
        };
        let now = Utc::now();
        let digest = OpaqueToken::from_presented(code).digest();
        let code = match self.store().redeem_authorization_code(&digest, now).await? {
            CodeRedemption::Redeemed(code) => code,
            CodeRedemption::AlreadyUsed { session_id } => {
                if self.store().revoke_session(session_id, now).await? {
                    tracing::warn!(%session_id, "authorization code reused; its session revoked");
                }
                return Err(AuthError::InvalidGrant("the code was already used"));
            }
            CodeRedemption::Invalid => {
                return Err(AuthError::InvalidGrant("the code is invalid or expired"))
            }
        };
        if code.client_id != client.id {
            return Err(AuthError::InvalidGrant(
                "the code was issued to another client",
            ));
        }
        if redirect_uri.is_some_and(|uri| uri != code.grant.redirect_uri) {
            return Err(AuthError::InvalidGrant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        let Some(verifier) = code_verifier else {
            return Err(AuthError::InvalidGrant("code_verifier is required (PKCE)"));
        };
        if !pkce_matches(&code.grant.code_challenge, verifier) {
            return Err(AuthError::InvalidGrant(
                "code_verifier does not match the challenge",
            ));
        }
        let user = match self.store().find_user_by_id(code.grant.user_id).await? {
            Some(user) if !user.disabled => user,
            Some(_) => return Err(AuthError::AccountDisabled),
            None => return Err(AuthError::InvalidGrant("the account no longer exists")),
        };
        let refresh = OpaqueToken::generate();
        let first = self.refresh_record(&refresh, None, now);
        let session = Session {
            id: code.session_id,
            user_id: user.id,
            created_at: now,
            expires_at: first.expires_at,
            revoked_at: None,
            scope: code.grant.scope.clone(),
            client_id: client.id.clone(),
            auth_time: Some(code.grant.auth_time),
            amr: Some(code.grant.amr.join(" ")),
            browser_session_id: code.grant.browser_session_id,
        };
        self.store().create_session(&session, &first).await?;
        let offline = scope_has(code.grant.scope.as_deref(), "offline_access");
        let mut grant = self.grant(user, &session, refresh, code.grant.nonce.as_deref())?;
        grant.refresh_issued = offline && client.allows(GrantType::RefreshToken);
        Ok(grant)
    }

    /// The client-credentials grant (RFC 6749 §4.4): a confidential client
    /// that proved itself gets a token for itself, without a refresh token.
    /// Without `scope` it gets every scope it is allowed but the ones about
    /// a person; asking for one it may not have is `invalid_scope`.
    pub async fn client_credentials_grant(
        &self,
        client: &TokenClient,
        requested_scope: Option<&str>,
    ) -> Result<ClientGrant, AuthError> {
        let TokenClient::Registered(client) = client else {
            return Err(AuthError::UnauthorizedClient);
        };
        if client.is_public() {
            return Err(AuthError::UnauthorizedClient);
        }
        let scope = match requested_scope.filter(|s| !s.trim().is_empty()) {
            Some(requested) => client
                .granted_scope(Some(requested))
                .map_err(AuthError::InvalidScope)?,
            None => {
                let own: Vec<&str> = client
                    .scopes
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !USER_SCOPES.contains(s))
                    .collect();
                (!own.is_empty()).then(|| own.join(" "))
            }
        };
        let issued = self
            .tokens()
            .issue_to_client(&client.id, scope.clone())
            .map_err(|e| AuthError::Internal(format!("signing a token: {e}")))?;
        self.audit(
            Audited::new(
                Actor::Client(client.id.clone()),
                "token.client_credentials",
                Outcome::Success,
            )
            .on_client(&client.id),
        )
        .await;
        Ok(ClientGrant {
            access_token: issued.token,
            expires_in: issued.expires_in,
            scope,
        })
    }

    /// The administration client a bearer token speaks for: a
    /// `client_credentials` token (no session, `sub` = `client_id`) with
    /// the `admin` scope, of a client that still exists and is still
    /// allowed that scope and grant. A bad token is `InvalidToken` (401);
    /// any other token is `InsufficientScope` (403).
    pub async fn admin_client(&self, access_token: &str) -> Result<Client, AuthError> {
        let claims = self.tokens().verify(access_token)?;
        if !claims.is_client_token() || !scope_has(claims.scope.as_deref(), ADMIN_SCOPE) {
            return Err(AuthError::InsufficientScope(ADMIN_SCOPE));
        }
        match self.find_client(&claims.client_id).await? {
            Some((client, _))
                if client.allows(GrantType::ClientCredentials)
                    && client.scopes.iter().any(|s| s == ADMIN_SCOPE) =>
            {
                Ok(client)
            }
            _ => Err(AuthError::InsufficientScope(ADMIN_SCOPE)),
        }
    }

    /// Stored clients and configured ones, by id (configured first on a tie).
    pub async fn all_clients(&self) -> Result<Vec<(Client, ClientSource)>, AuthError> {
        let mut all: Vec<(Client, ClientSource)> = self
            .policy()
            .oauth
            .clients
            .iter()
            .map(|c| (c.clone(), ClientSource::Config))
            .collect();
        all.extend(
            self.store()
                .list_clients()
                .await?
                .into_iter()
                .filter(|c| !self.policy().oauth.clients.iter().any(|k| k.id == c.id))
                .map(|c| (c, ClientSource::Store)),
        );
        all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(all)
    }
}
