//! Building the application state from configuration.

use std::sync::Arc;

use auth_core::token::{TokenConfig, TokenIssuer};
use auth_core::{
    AuthService, FactorSettings, IdTokenIssuer, Mailer, OAuthPolicy, Passkeys, PasswordHasher,
    SessionPolicy, Store,
};

use crate::api::AppState;
use crate::config::Config;
use crate::instrumented::Instrumented;
use crate::keys::{load_id_token_keys, load_token_keys};

/// Default `client_id` claim: clients are public, so tokens name the server's own.
pub const DEFAULT_CLIENT_ID: &str = "tessera";

/// Wires a store into the services the configuration describes.
pub fn build_state<S: Store>(
    store: S,
    config: &Config,
) -> anyhow::Result<Arc<AppState<Instrumented<S>>>> {
    let store = crate::instrumented::instrument(store);
    let hasher = PasswordHasher::new(&config.passwords)?;
    let keys = load_token_keys(config)?;
    let id_keys = load_id_token_keys(config)?;
    // One JWKS for both: access-token keys and ID-token keys (often the
    // same folder, so the same key may appear in both sets).
    let mut jwks = keys.public_jwks().to_vec();
    for key in id_keys.public_jwks() {
        if !jwks.iter().any(|k| k.kid == key.kid) {
            jwks.push(key.clone());
        }
    }
    let id_tokens = IdTokenIssuer::new(id_keys, config.issuer(), config.oidc.id_token_ttl)?;
    let tokens = TokenIssuer::new(
        keys,
        TokenConfig {
            issuer: config.issuer(),
            audience: config.tokens.audience.clone(),
            access_ttl: config.tokens.access_ttl,
            leeway: config.tokens.leeway,
            client_id: DEFAULT_CLIENT_ID.into(),
        },
    );
    let policy = SessionPolicy {
        refresh_ttl: config.tokens.refresh_ttl,
        refresh_reuse_grace: config.tokens.refresh_reuse_grace,
        allowed_scopes: config.tokens.scopes.iter().cloned().collect(),
        throttle: config.throttle.clone(),
        oauth: OAuthPolicy {
            clients: config
                .clients
                .iter()
                .map(|c| {
                    c.validate()
                        .map_err(|e| anyhow::anyhow!("client {}: {e}", c.id))
                })
                .collect::<anyhow::Result<_>>()?,
            legacy_public_client: config.oauth.legacy_public_client,
            password_grant: config.oauth.password_grant,
            code_ttl: config.oauth.code_ttl,
            request_ttl: config.oauth.request_ttl,
            browser_idle_ttl: config.ui.session_idle_timeout,
            browser_absolute_ttl: config.ui.session_lifetime,
        },
        audit_retention: config.audit.retention,
    };
    let mailer = Mailer {
        composer: Arc::new(crate::mail::TemplateComposer::new(config)?),
        public_url: config.issuer(),
        link_ttl: config.mail.link_ttl,
        require_verified_email: config.accounts.require_verified_email,
        resend_limit: config.mail.resend_limit,
        forgot_address_limit: config.mail.forgot_per_address,
        forgot_client_limit: config.mail.forgot_per_client,
    };
    let factors = FactorSettings {
        key: crate::keys::load_factor_key(config)?,
        issuer_name: config.ui.product_name.clone(),
        passkeys: passkeys_for(config),
    };
    let service = AuthService::new(store, hasher, tokens, policy)
        .with_id_tokens(id_tokens)
        .with_mail(mailer)
        .with_factors(factors);
    Ok(Arc::new(AppState {
        service,
        // Everything a client can be granted: the password grant's scopes
        // and those of the configured clients (stored clients may add more).
        scopes: config
            .tokens
            .scopes
            .iter()
            .chain(config.clients.iter().flat_map(|c| &c.scopes))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        jwks: jwks.iter().map(Into::into).collect(),
        rate_limiter: Arc::new(crate::api::rate_limit::AddressLimiter::new(
            &config.rate_limit,
        )),
        pages: crate::pages::Pages::new(config)?,
    }))
}

/// Passkeys for `server.public_url`, or none (with the reason in the log)
/// when the URL cannot carry them: WebAuthn binds a credential to a domain
/// name, so `http://127.0.0.1:8080` gets no passkeys while
/// `http://localhost:8080` does.
fn passkeys_for(config: &Config) -> Option<Passkeys> {
    match Passkeys::new(&config.issuer(), &config.ui.product_name) {
        Ok(passkeys) => Some(passkeys),
        Err(why) => {
            tracing::warn!(
                "{why}. Set server.public_url to a domain name (http://localhost:PORT on a laptop) \
                 to offer passkeys."
            );
            None
        }
    }
}
