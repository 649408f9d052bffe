//! The HTTP API: routes, OpenAPI document, Swagger UI, middleware.

mod admin;
mod authorize;
pub mod body;
mod client_auth;
mod direct_json;
mod discovery;
mod logout;
mod middleware;
mod oauth;
mod ops;
pub mod problem;
pub mod rate_limit;
pub mod routes;
mod userinfo;
mod users;

pub use users::{send_reset_later, FORGOT_ACCEPTED};

use std::sync::Arc;

use auth_core::{AuthService, Store};
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::pages::mail_links::MailPage;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState<S> {
    pub service: AuthService<S>,
    /// Published in the server metadata.
    pub scopes: Vec<String>,
    /// Published at `/.well-known/jwks.json`, computed once at start-up.
    pub jwks: Vec<PublicJwk>,
    /// Per-address limits on the hashing endpoints.
    pub rate_limiter: Arc<rate_limit::AddressLimiter>,
    /// The hosted pages: templates, styling, cookie settings.
    pub pages: crate::pages::Pages,
}

pub use discovery::PublicJwk;

/// Every documented API group.
type Apis<S> = (
    users::UsersApi<S>,
    oauth::OAuthApi<S>,
    authorize::AuthorizeApi<S>,
    discovery::DiscoveryApi<S>,
    userinfo::UserInfoApi<S>,
    logout::LogoutApi<S>,
    ops::OpsApi<S>,
    admin::AdminUsersApi<S>,
    admin::AdminClientsApi<S>,
    admin::AdminAuditApi<S>,
);

/// The OpenAPI service (all documented routes).
fn openapi<S: Store>(state: &Arc<AppState<S>>) -> OpenApiService<Apis<S>, ()> {
    OpenApiService::new(
        (
            users::UsersApi::new(Arc::clone(state)),
            oauth::OAuthApi::new(Arc::clone(state)),
            authorize::AuthorizeApi::new(Arc::clone(state)),
            discovery::DiscoveryApi::new(Arc::clone(state)),
            userinfo::UserInfoApi::new(Arc::clone(state)),
            logout::LogoutApi::new(Arc::clone(state)),
            ops::OpsApi::new(Arc::clone(state)),
            admin::AdminUsersApi::new(Arc::clone(state)),
            admin::AdminClientsApi::new(Arc::clone(state)),
            admin::AdminAuditApi::new(Arc::clone(state)),
        ),
        "Tessera",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Self-hosted authentication: registration, an OAuth 2.1 authorization server \
         (authorization code with PKCE, refresh tokens, the password grant) and an \
         OpenID Connect provider (discovery, ID tokens, userinfo, RP-initiated logout), \
         and an administration API under /admin/v1 (users, sessions, clients, audit log) \
         for clients with the `admin` scope. Use Authorize to log in through /token.",
    )
}

/// The whole application as one endpoint, ready to serve or to test in-process.
pub fn app<S: Store>(state: Arc<AppState<S>>) -> impl Endpoint {
    use crate::pages::passkeys::PasskeyRoute;
    // The recorder must exist before the first request is counted.
    crate::metrics::handle();
    let api = openapi(&state);
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    let page = |page| {
        let endpoint = || crate::pages::flow::PageEndpoint::new(Arc::clone(&state), page);
        poem::get(endpoint()).post(endpoint())
    };
    let mail_page = |page| {
        let endpoint = || crate::pages::mail_links::MailPageEndpoint::new(Arc::clone(&state), page);
        poem::get(endpoint()).post(endpoint())
    };
    let second_factor =
        || crate::pages::second_factor::SecondFactorEndpoint::new(Arc::clone(&state));
    let passkey = |route| crate::pages::passkeys::PasskeyEndpoint::new(Arc::clone(&state), route);
    let account = || {
        let endpoint = || crate::pages::account::AccountEndpoint::new(Arc::clone(&state));
        poem::get(endpoint()).post(endpoint())
    };
    let stylesheet = {
        let state = Arc::clone(&state);
        poem::get(poem::endpoint::make_sync(move |_| state.pages.stylesheet()))
    };
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .at("/sign-in", page(crate::pages::flow::Page::SignIn))
        .at("/sign-up", page(crate::pages::flow::Page::SignUp))
        .at("/consent", page(crate::pages::flow::Page::Consent))
        .at("/forgot-password", mail_page(MailPage::ForgotPassword))
        .at("/password/reset", mail_page(MailPage::ResetPassword))
        .at("/email/confirm", mail_page(MailPage::ConfirmEmail))
        .at(
            crate::pages::second_factor::PATH,
            poem::get(second_factor()).post(second_factor()),
        )
        .at(
            "/sign-in/passkey",
            poem::post(passkey(PasskeyRoute::SignIn)),
        )
        .at(
            "/passkeys/options",
            poem::post(passkey(PasskeyRoute::Options)),
        )
        .at(crate::pages::account::PATH, account())
        .at("/account/*rest", account())
        .at(
            crate::pages::passkeys::SCRIPT_PATH,
            poem::get(poem::endpoint::make_sync(|_| {
                crate::pages::passkey_script()
            })),
        )
        .at(crate::pages::STYLESHEET_PATH, stylesheet)
        .catch_all_error(|err| async move { problem::framework_error(err) })
        .around({
            let state = Arc::clone(&state);
            move |next, req| rate_limit::limit(next, req, Arc::clone(&state))
        })
        .around({
            let state = Arc::clone(&state);
            move |next, req| middleware::audit_origin(next, req, Arc::clone(&state))
        })
        .around(middleware::response_headers)
        .around(middleware::observe_request)
}

/// The OpenAPI document as JSON (for `cargo xtask openapi` and tests).
pub fn openapi_json<S: Store>(state: &Arc<AppState<S>>) -> String {
    openapi(state).spec()
}

/// The route table's test: every route in the OpenAPI document is in the
/// table with the same methods, and every documented table entry is in the
/// document.
#[cfg(test)]
mod route_table_tests {
    use std::collections::BTreeMap;

    use super::routes::ROUTES;

    #[test]
    fn the_route_table_and_the_openapi_document_agree() {
        let mut config = crate::config::Config::default();
        config.tokens.secret = Some("route-table-test-secret-0123456789abcdef".into());
        let state = crate::state::build_state(store_memory::MemoryStore::new(), &config)
            .unwrap_or_else(|e| panic!("state: {e}"));
        let document: serde_json::Value =
            serde_json::from_str(&super::openapi_json(&state)).unwrap_or_default();
        let from_document: BTreeMap<String, Vec<String>> = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, item)| {
                        let mut methods: Vec<String> = item
                            .as_object()
                            .map(|ops| ops.keys().map(|m| m.to_uppercase()).collect())
                            .unwrap_or_default();
                        methods.sort();
                        (path.clone(), methods)
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(!from_document.is_empty(), "the document lists paths");
        let from_table: BTreeMap<String, Vec<String>> = ROUTES
            .iter()
            .filter(|route| route.documented)
            .map(|route| {
                let mut methods: Vec<String> = route
                    .methods
                    .iter()
                    .filter(|m| **m != poem::http::Method::HEAD)
                    .map(|m| m.as_str().to_owned())
                    .collect();
                methods.sort();
                (route.template.to_owned(), methods)
            })
            .collect();
        assert_eq!(from_table, from_document);
    }
}
