//! `/logout`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
//!
//! A relying party sends the browser here with `id_token_hint`,
//! `client_id`, `post_logout_redirect_uri` and `state` (query or form).
//! With a hint this server signed, naming the person signed in, the browser
//! is signed out at once; otherwise the person confirms with **Sign out**
//! (a CSRF-protected form), so a link on another site cannot sign anyone
//! out. Signing out ends the browser's sign-in session and every session it
//! started; the browser then goes back to the registered
//! `post_logout_redirect_uri` (with `state`), or sees a "signed out" page.

use auth_core::{LogoutError, LogoutQuery, LogoutRequest, Store, User};
use minijinja::context;
use poem::http::StatusCode;
use poem::{Request, Response};

use super::flow::{browser_session, field, see_other, with_cookie};
use crate::api::body::FormParams;
use crate::api::AppState;

/// The form field that marks the confirmation form's submission.
const DECISION: &str = "decision";

fn logout_query(params: &FormParams) -> LogoutQuery {
    let get = |name| field(params, name).map(str::to_owned);
    LogoutQuery {
        id_token_hint: get("id_token_hint"),
        client_id: get("client_id"),
        post_logout_redirect_uri: get("post_logout_redirect_uri"),
        state: get("state"),
    }
}

/// Answers a logout request whose parameters (query or form) are `params`,
/// `None` when they could not be read.
pub async fn sign_out<S: Store>(
    state: &AppState<S>,
    req: &Request,
    params: Option<FormParams>,
) -> Response {
    let Some(params) = params else {
        return state.pages.error(
            StatusCode::BAD_REQUEST,
            "The sign-out request could not be read",
            "The link or form sent something this server does not understand.",
            "Go back to the application and sign out from there again.",
        );
    };
    Logout { state }.handle(req, &params).await
}

struct Logout<'a, S> {
    state: &'a AppState<S>,
}

impl<S: Store> Logout<'_, S> {
    async fn handle(&self, req: &Request, params: &FormParams) -> Response {
        let pages = &self.state.pages;
        let service = &self.state.service;
        let request = match service.check_logout(&logout_query(params)).await {
            Ok(request) => request,
            Err(LogoutError::Failed(e)) => return pages.auth_error(&e),
            Err(refused) => {
                return pages.error(
                    StatusCode::BAD_REQUEST,
                    "This sign-out link is not valid",
                    &refused.to_string(),
                    "Go back to the application and sign out from there again.",
                )
            }
        };
        let browser = match browser_session(self.state, req).await {
            Ok(browser) => browser,
            Err(e) => return pages.auth_error(&e),
        };
        let user = browser.as_ref().map(|(_, user)| user);
        let confirmed = if field(params, DECISION).is_some() {
            if !pages.cookies.csrf_matches(req, field(params, "csrf_token")) {
                return pages.forbidden_form();
            }
            true
        } else {
            // Nobody signed in: nothing a forged link could end.
            browser.is_none() || request.is_confirmed_by_hint(user)
        };
        if !confirmed {
            return self.confirmation_page(req, params, &request, user);
        }
        let browser_session = browser.as_ref().map(|(session, _)| session.id);
        match service
            .sign_out(browser_session, request.hint.as_ref())
            .await
        {
            Ok(revoked) => {
                if let Some(user) = user {
                    tracing::info!(user_id = %user.id, sessions_revoked = revoked, "browser signed out");
                }
            }
            Err(e) => return pages.auth_error(&e),
        }
        let done = match request.redirect_url() {
            Some(url) => see_other(&url),
            None => pages.page(
                StatusCode::OK,
                "signed_out.html",
                context! { client_name => request.client.as_ref().map(|c| &c.name) },
            ),
        };
        with_cookie(done, Some(pages.cookies.clear_session()))
    }

    /// **Sign out**, as a form carrying the request on (and a CSRF token).
    fn confirmation_page(
        &self,
        req: &Request,
        params: &FormParams,
        request: &LogoutRequest,
        user: Option<&User>,
    ) -> Response {
        let pages = &self.state.pages;
        let (csrf_secret, set_csrf) = pages.cookies.csrf_for_page(req);
        let page = pages.page(
            StatusCode::OK,
            "logout.html",
            context! {
                csrf_token => super::cookies::csrf_token(&csrf_secret),
                username => user.map(|u| &u.username),
                client_name => request.client.as_ref().map(|c| &c.name),
                id_token_hint => field(params, "id_token_hint"),
                client_id => request.client.as_ref().map(|c| &c.id),
                post_logout_redirect_uri => &request.post_logout_redirect_uri,
                state => &request.state,
            },
        );
        with_cookie(page, set_csrf)
    }
}
