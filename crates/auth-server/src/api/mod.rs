//! The HTTP API: routes, OpenAPI document, Swagger UI, middleware.

pub mod body;
mod discovery;
mod middleware;
mod oauth;
mod ops;
pub mod problem;
pub mod rate_limit;
mod users;

use std::sync::Arc;

use auth_core::{AuthService, Store};
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

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
}

pub use discovery::PublicJwk;

/// Every documented API group.
type Apis<S> = (
    users::UsersApi<S>,
    oauth::OAuthApi<S>,
    discovery::DiscoveryApi<S>,
    ops::OpsApi<S>,
);

/// The OpenAPI service (all documented routes).
fn openapi<S: Store>(state: &Arc<AppState<S>>) -> OpenApiService<Apis<S>, ()> {
    OpenApiService::new(
        (
            users::UsersApi::new(Arc::clone(state)),
            oauth::OAuthApi::new(Arc::clone(state)),
            discovery::DiscoveryApi::new(Arc::clone(state)),
            ops::OpsApi::new(Arc::clone(state)),
        ),
        "Tessera",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Self-hosted authentication: registration, the OAuth 2.0 password grant and \
         JWT access tokens. Use Authorize to log in through /token.",
    )
}

/// The whole application as one endpoint, ready to serve or to test in-process.
pub fn app<S: Store>(state: Arc<AppState<S>>) -> impl Endpoint {
    // The recorder must exist before the first request is counted.
    crate::metrics::handle();
    let api = openapi(&state);
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .catch_all_error(|err| async move { problem::framework_error(err) })
        .around({
            let limiter = Arc::clone(&state.rate_limiter);
            move |next, req| rate_limit::limit(next, req, Arc::clone(&limiter))
        })
        .around(middleware::response_headers)
        .around(middleware::observe_request)
}

/// The OpenAPI document as JSON (for `cargo xtask openapi` and tests).
pub fn openapi_json<S: Store>(state: &Arc<AppState<S>>) -> String {
    openapi(state).spec()
}
