//! The second step of a sign-in, `/sign-in/factor`: after a correct
//! password, a code from the authenticator app (field **Code**; a recovery
//! code works too) or the passkey. The step is named by the `tessera_mfa`
//! cookie and kept in the store, so any replica continues it.

use std::sync::Arc;

use auth_core::{AuthError, BrowserSignIn, SecondFactorChoices, Store};
use minijinja::context;
use poem::http::{Method, StatusCode};
use poem::{Endpoint, Request, Response};
use uuid::Uuid;

use super::flow::{field, finish_sign_in, with_cookie, Target};
use crate::api::body::FormParams;
use crate::api::AppState;
use crate::metrics;

/// Where the second step is served.
pub const PATH: &str = "/sign-in/factor";

/// `/sign-in/factor`: `GET` shows the step, `POST` answers it.
#[derive(Debug)]
pub struct SecondFactorEndpoint<S> {
    state: Arc<AppState<S>>,
}

impl<S> SecondFactorEndpoint<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

impl<S: Store> Endpoint for SecondFactorEndpoint<S> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let state = &*self.state;
        let Some(token) = state.pages.cookies.second_factor(&req).map(str::to_owned) else {
            return Ok(step_expired(state));
        };
        let choices = match state.service.second_factor_choices(&token).await {
            Ok(Some(choices)) => choices,
            Ok(None) => return Ok(step_expired(state)),
            Err(e) => return Ok(state.pages.auth_error(&e)),
        };
        let (csrf_secret, set_csrf) = state.pages.cookies.csrf_for_page(&req);
        let csrf_token = super::cookies::csrf_token(&csrf_secret);
        if req.method() != Method::POST {
            let page = step_page(state, StatusCode::OK, &choices, &csrf_token, None);
            return Ok(with_cookie(page, set_csrf));
        }
        Ok(match super::posted_form(&state.pages, &mut req).await {
            Ok(form) => answer(state, &req, &token, &choices, &csrf_token, &form).await,
            Err(refused) => refused,
        })
    }
}

async fn answer<S: Store>(
    state: &AppState<S>,
    req: &Request,
    token: &str,
    choices: &SecondFactorChoices,
    csrf_token: &str,
    form: &FormParams,
) -> Response {
    let service = &state.service;
    let outcome = match (field(form, "ceremony"), field(form, "credential")) {
        (Some(ceremony), Some(credential)) => {
            service
                .complete_second_factor_with_passkey(token, ceremony, credential)
                .await
        }
        _ => {
            let Some(code) = field(form, "code") else {
                return step_page(
                    state,
                    StatusCode::BAD_REQUEST,
                    choices,
                    csrf_token,
                    Some("Enter the code from your authenticator app, or a recovery code."),
                );
            };
            service.complete_second_factor(token, code).await
        }
    };
    match outcome {
        Ok((signed_in, step)) => {
            metrics::record_login("success");
            continue_signed_in(state, req, signed_in, step.request).await
        }
        Err(e @ AuthError::InvalidCode) => {
            metrics::record_login(metrics::outcome_of(&e));
            step_page(
                state,
                StatusCode::UNAUTHORIZED,
                choices,
                csrf_token,
                Some("That code is not valid. Codes change every 30 seconds and work once."),
            )
        }
        Err(e @ AuthError::PasskeyRefused(_)) => {
            metrics::record_login(metrics::outcome_of(&e));
            tracing::info!(user_id = %choices.user.id, error = %e, "passkey refused as second factor");
            step_page(
                state,
                StatusCode::UNAUTHORIZED,
                choices,
                csrf_token,
                Some("That passkey was not accepted. Try again, or enter a code instead."),
            )
        }
        Err(AuthError::CeremonyExpired) => step_expired(state),
        Err(e) => {
            metrics::record_login(metrics::outcome_of(&e));
            state.pages.auth_error(&e)
        }
    }
}

/// Signed in at last: back into the application's request it started from
/// (when it is still pending) or to the account page; the second step's
/// cookie goes.
pub(crate) async fn continue_signed_in<S: Store>(
    state: &AppState<S>,
    req: &Request,
    signed_in: BrowserSignIn,
    request: Option<Uuid>,
) -> Response {
    let pending = match request {
        Some(id) => match state.service.pending(id).await {
            Ok(found) => found,
            Err(e) => return state.pages.auth_error(&e),
        },
        None => None,
    };
    let target = match &pending {
        Some((pending, client)) => Target::Flow(pending, client),
        None => Target::Account,
    };
    let resp = finish_sign_in(state, req, target, signed_in).await;
    with_cookie(resp, Some(state.pages.cookies.clear_second_factor()))
}

fn step_page<S: Store>(
    state: &AppState<S>,
    status: StatusCode,
    choices: &SecondFactorChoices,
    csrf_token: &str,
    error: Option<&str>,
) -> Response {
    state.pages.page(
        status,
        "second_factor.html",
        context! {
            csrf_token,
            username => &choices.user.username,
            totp => choices.totp,
            passkey => choices.passkey,
            recovery_codes => choices.recovery_codes,
            error,
        },
    )
}

fn step_expired<S: Store>(state: &AppState<S>) -> Response {
    state.pages.page(
        StatusCode::GONE,
        "error.html",
        context! {
            title => "This sign-in has expired",
            message => "The second step took too long, or it was already completed.",
            next_step => "Start again with your password.",
            next_url => "/sign-in",
            next_label => "Sign in",
        },
    )
}
