//! What the pages' passkey buttons talk to: `POST /passkeys/options` (the
//! WebAuthn options of a new ceremony, as JSON, for the script) and
//! `POST /sign-in/passkey` (signing in with a passkey alone, no username).
//! The script itself is served from [`SCRIPT_PATH`]; it is the only script
//! of the pages, and only passkeys need it.

use std::sync::Arc;

use auth_core::{AuthError, PasskeyChallenge, Store};
use minijinja::context;
use poem::http::{header, StatusCode};
use poem::{Endpoint, Request, Response};
use uuid::Uuid;

use super::flow::{browser_session, field};
use super::second_factor::continue_signed_in;
use crate::api::AppState;
use crate::metrics;

/// Where the passkey script is served.
pub const SCRIPT_PATH: &str = "/ui/passkeys.js";
/// The script: asks for options, runs the browser's WebAuthn ceremony, and
/// posts its answer with the form.
pub const SCRIPT: &str = include_str!("templates/passkeys.js");

/// Which endpoint of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRoute {
    Options,
    SignIn,
}

#[derive(Debug)]
pub struct PasskeyEndpoint<S> {
    state: Arc<AppState<S>>,
    route: PasskeyRoute,
}

impl<S> PasskeyEndpoint<S> {
    pub fn new(state: Arc<AppState<S>>, route: PasskeyRoute) -> Self {
        Self { state, route }
    }
}

impl<S: Store> Endpoint for PasskeyEndpoint<S> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let state = &*self.state;
        let form = match super::posted_form(&state.pages, &mut req).await {
            Ok(form) => form,
            Err(refused) => return Ok(refused),
        };
        Ok(match self.route {
            PasskeyRoute::Options => options(state, &req, field(&form, "purpose")).await,
            PasskeyRoute::SignIn => {
                let request = field(&form, "request").and_then(|id| Uuid::parse_str(id).ok());
                match (field(&form, "ceremony"), field(&form, "credential")) {
                    (Some(ceremony), Some(credential)) => {
                        sign_in(state, &req, ceremony, credential, request).await
                    }
                    _ => refused_page(state, StatusCode::BAD_REQUEST, request),
                }
            }
        })
    }
}

async fn options<S: Store>(state: &AppState<S>, req: &Request, purpose: Option<&str>) -> Response {
    let service = &state.service;
    let started = match purpose {
        Some("sign-in") => service.start_passkey_sign_in().await,
        Some("second-factor") => match state.pages.cookies.second_factor(req) {
            Some(token) => service.start_second_factor_passkey(token).await,
            None => Err(AuthError::CeremonyExpired),
        },
        Some("register") => match browser_session(state, req).await {
            Ok(Some((_, user))) => service.start_passkey_registration(&user).await,
            Ok(None) => return json_error(StatusCode::UNAUTHORIZED, "sign in first"),
            Err(e) => Err(e),
        },
        _ => return json_error(StatusCode::BAD_REQUEST, "unknown purpose"),
    };
    match started {
        Ok(PasskeyChallenge { token, options }) => {
            let body = serde_json::json!({
                "ceremony": token.expose(),
                "publicKey": options.get("publicKey"),
            });
            Response::builder()
                .content_type("application/json")
                .header(header::CACHE_CONTROL, "no-store")
                .body(body.to_string())
        }
        Err(AuthError::CeremonyExpired) => json_error(StatusCode::GONE, "this sign-in expired"),
        Err(AuthError::PasskeysUnavailable) => {
            json_error(StatusCode::NOT_FOUND, "passkeys are not available here")
        }
        Err(AuthError::NoSecondFactor) => json_error(StatusCode::CONFLICT, "no passkey here"),
        Err(e) => {
            tracing::warn!(error = %e, "passkey options failed");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

async fn sign_in<S: Store>(
    state: &AppState<S>,
    req: &Request,
    ceremony: &str,
    credential: &str,
    request: Option<Uuid>,
) -> Response {
    match state
        .service
        .finish_passkey_sign_in(ceremony, credential)
        .await
    {
        Ok(signed_in) => {
            metrics::record_login("success");
            continue_signed_in(state, req, signed_in, request).await
        }
        Err(
            e @ (AuthError::PasskeyRefused(_)
            | AuthError::CeremonyExpired
            | AuthError::InvalidCredentials
            | AuthError::AccountDisabled),
        ) => {
            metrics::record_login(metrics::outcome_of(&e));
            tracing::info!(error = %e, "passkey sign-in refused");
            refused_page(state, StatusCode::UNAUTHORIZED, request)
        }
        Err(e) => state.pages.auth_error(&e),
    }
}

fn refused_page<S: Store>(
    state: &AppState<S>,
    status: StatusCode,
    request: Option<Uuid>,
) -> Response {
    let next_url = match request {
        Some(id) => format!("/sign-in?request={id}"),
        None => "/sign-in".to_owned(),
    };
    state.pages.page(
        status,
        "error.html",
        context! {
            title => "Passkey not accepted",
            message => "That passkey could not sign you in. Signing in with a passkey alone \
                        needs one that checks it is you (a PIN, fingerprint or face).",
            next_step => "Try again, or sign in with your password.",
            next_url,
            next_label => "Back to sign-in",
        },
    )
}

fn json_error(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(serde_json::json!({ "error": message }).to_string())
}
