//! The pages of the authorization-code flow — `/sign-in`, `/sign-up`,
//! `/consent` — and what `/authorize` shares with them: turning the next
//! step decided by `auth-core` into a redirect.
//!
//! Every page continues a pending request named by `?request=<id>` (a form
//! field on POST); the request lives in the store, so any replica serves any
//! step.

use std::sync::Arc;

use auth_core::{
    AuthError, AuthService, AuthorizationParams, BrowserSession, Client, ClientRedirect,
    PasswordStep, PendingAuthorization, Progress, Registration, Step, Store, User,
};
use minijinja::context;
use poem::http::{header, Method, StatusCode};
use poem::{Endpoint, Request, Response};
use uuid::Uuid;

use super::{describe_scope, field_errors, Pages};
use crate::api::body::{parse_form, FormParams, MAX_BODY_BYTES};
use crate::api::AppState;
use crate::metrics;

/// Where the browser goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Back to the client's redirect URI (with a code or an error).
    Client(String),
    /// To one of our pages.
    Page(String),
}

/// `redirect_uri` with the response parameters added (RFC 6749 §4.1.2,
/// RFC 9207 `iss`), keeping any query the URI already has.
pub fn client_redirect_url(redirect: &ClientRedirect, issuer: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    match &redirect.outcome {
        Ok(code) => {
            query.append_pair("code", code);
        }
        Err((error, description)) => {
            query.append_pair("error", error.as_str());
            query.append_pair("error_description", description);
        }
    }
    if let Some(state) = &redirect.state {
        query.append_pair("state", state);
    }
    query.append_pair("iss", issuer);
    let separator = if redirect.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{separator}{}", redirect.redirect_uri, query.finish())
}

/// Asks `auth-core` what comes next and turns it into a redirect; keeps the
/// request in the store when a page must be shown, forgets it once answered.
pub async fn proceed<S: Store>(
    state: &AppState<S>,
    params: &AuthorizationParams,
    client: &Client,
    browser: Option<&(BrowserSession, User)>,
    progress: Progress,
    pending: Option<&PendingAuthorization>,
) -> Result<Next, AuthError> {
    let service = &state.service;
    let path = match service.next_step(params, client, browser, progress).await? {
        Step::Return(redirect) => {
            if let Some(pending) = pending {
                service.finish_pending(pending.id).await?;
            }
            metrics::record_authorization(if redirect.outcome.is_ok() {
                "code"
            } else {
                "error"
            });
            return Ok(Next::Client(client_redirect_url(
                &redirect,
                &state.pages.issuer,
            )));
        }
        Step::SignIn => "/sign-in",
        Step::CreateAccount => "/sign-up",
        Step::Consent => "/consent",
    };
    let id = match pending {
        Some(pending) => pending.id,
        None => service.save_pending(params.clone()).await?.id,
    };
    Ok(Next::Page(format!("{path}?request={id}")))
}

/// The browser's sign-in session, if its cookie names an active one.
pub async fn browser_session<S: Store>(
    state: &AppState<S>,
    req: &Request,
) -> Result<Option<(BrowserSession, User)>, AuthError> {
    match state.pages.cookies.session(req) {
        Some(cookie) => state.service.browser_session(cookie).await,
        None => Ok(None),
    }
}

/// Which page an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    SignIn,
    SignUp,
    Consent,
}

/// One page: `GET` shows it, `POST` submits its form.
#[derive(Debug)]
pub struct PageEndpoint<S> {
    state: Arc<AppState<S>>,
    page: Page,
}

impl<S> PageEndpoint<S> {
    pub fn new(state: Arc<AppState<S>>, page: Page) -> Self {
        Self { state, page }
    }
}

impl<S: Store> Endpoint for PageEndpoint<S> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let flow = Flow { state: &self.state };
        Ok(if req.method() == Method::POST {
            match super::posted_form(&self.state.pages, &mut req).await {
                Ok(form) => flow.submit(self.page, &req, form).await,
                Err(refused) => refused,
            }
        } else {
            flow.show(self.page, &req).await
        })
    }
}

/// A page form, or why it could not be read (answered with a 400 page).
pub(crate) async fn read_form(req: &mut Request) -> Option<FormParams> {
    let urlencoded = req
        .header(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !urlencoded {
        return None;
    }
    let body = req
        .take_body()
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .ok()?;
    parse_form(&body).ok()
}

struct Flow<'a, S> {
    state: &'a AppState<S>,
}

/// A form field, `None` when missing, empty or repeated.
pub(crate) fn field<'f>(form: &'f FormParams, name: &str) -> Option<&'f str> {
    form.single(name).ok().flatten()
}

pub(crate) fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish()
}

pub(crate) fn with_cookie(mut resp: Response, set_cookie: Option<String>) -> Response {
    if let Some(value) = set_cookie.and_then(|v| header::HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
    resp
}

/// Where a sign-in leads: back into an application's authorization
/// request, or to the account page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Flow(&'a PendingAuthorization, &'a Client),
    Account,
}

impl Target<'_> {
    pub(crate) fn request_id(&self) -> Option<Uuid> {
        match self {
            Target::Flow(pending, _) => Some(pending.id),
            Target::Account => None,
        }
    }
}

/// A browser just signed in (password, second factor, passkey or sign-up):
/// the session it had before, if any, ends (no session fixation, no
/// orphan), the new cookie is set, and the person goes on to the
/// application or the account page.
pub(crate) async fn finish_sign_in<S: Store>(
    state: &AppState<S>,
    req: &Request,
    target: Target<'_>,
    signed_in: auth_core::BrowserSignIn,
) -> Response {
    if let Some(previous) = state.pages.cookies.session(req) {
        if let Err(e) = state.service.end_browser_session(previous).await {
            return state.pages.auth_error(&e);
        }
    }
    tracing::info!(
        user_id = %signed_in.user.id,
        client_id = match target {
            Target::Flow(_, client) => client.id.as_str(),
            Target::Account => "account",
        },
        amr = %signed_in.session.amr.join(" "),
        "browser signed in"
    );
    let set_session = state.pages.cookies.set_session(signed_in.cookie.expose());
    let browser = (signed_in.session, signed_in.user);
    let next = match target {
        Target::Flow(pending, client) => {
            let progress = Progress {
                signed_in: true,
                consented: false,
            };
            continue_after(state, pending, client, &browser, progress).await
        }
        Target::Account => see_other(super::account::PATH),
    };
    with_cookie(next, Some(set_session))
}

/// After a form: 303 to the next page or back to the client.
async fn continue_after<S: Store>(
    state: &AppState<S>,
    pending: &PendingAuthorization,
    client: &Client,
    browser: &(BrowserSession, User),
    progress: Progress,
) -> Response {
    match proceed(
        state,
        &pending.params,
        client,
        Some(browser),
        progress,
        Some(pending),
    )
    .await
    {
        Ok(Next::Client(url) | Next::Page(url)) => see_other(&url),
        Err(e) => state.pages.auth_error(&e),
    }
}

impl<S: Store> Flow<'_, S> {
    fn pages(&self) -> &Pages {
        &self.state.pages
    }

    fn service(&self) -> &AuthService<S> {
        &self.state.service
    }

    /// The pending request named by `id`, with its client: from this
    /// process's copy to show a page, from the store to act on a form.
    async fn pending(
        &self,
        id: Option<&str>,
        for_page: bool,
    ) -> Result<Option<(PendingAuthorization, Client)>, AuthError> {
        let Some(id) = id.and_then(|id| Uuid::parse_str(id).ok()) else {
            return Ok(None);
        };
        if for_page {
            self.service().pending_for_page(id).await
        } else {
            self.service().pending(id).await
        }
    }

    async fn show(&self, page: Page, req: &Request) -> Response {
        let query =
            parse_form(req.uri().query().unwrap_or_default().as_bytes()).unwrap_or_default();
        if page == Page::SignIn && field(&query, "request").is_none() {
            // No application's request: signing in to the account page.
            let (csrf_secret, set_csrf) = self.pages().cookies.csrf_for_page(req);
            let csrf_token = super::cookies::csrf_token(&csrf_secret);
            let resp = self.sign_in_page(StatusCode::OK, Target::Account, &csrf_token, "", None);
            return with_cookie(resp, set_csrf);
        }
        let (pending, client) = match self.pending(field(&query, "request"), true).await {
            Ok(Some(found)) => found,
            Ok(None) => return self.pages().request_expired(),
            Err(e) => return self.pages().auth_error(&e),
        };
        let (csrf_secret, set_csrf) = self.pages().cookies.csrf_for_page(req);
        let csrf_token = super::cookies::csrf_token(&csrf_secret);
        let resp = match page {
            Page::SignIn => self.sign_in_page(
                StatusCode::OK,
                Target::Flow(&pending, &client),
                &csrf_token,
                pending.params.login_hint.as_deref().unwrap_or_default(),
                None,
            ),
            Page::SignUp => self.sign_up_page(
                StatusCode::OK,
                &pending,
                &client,
                &csrf_token,
                ("", ""),
                None,
                &[],
            ),
            Page::Consent => match browser_session(self.state, req).await {
                Ok(Some((_, user))) => self.consent_page(&pending, &client, &csrf_token, &user),
                Ok(None) => see_other(&format!("/sign-in?request={}", pending.id)),
                Err(e) => self.pages().auth_error(&e),
            },
        };
        with_cookie(resp, set_csrf)
    }

    async fn submit(&self, page: Page, req: &Request, form: FormParams) -> Response {
        let csrf_token = field(&form, "csrf_token").unwrap_or_default();
        if page == Page::SignIn && field(&form, "request").is_none() {
            return self.sign_in(req, Target::Account, csrf_token, &form).await;
        }
        let (pending, client) = match self.pending(field(&form, "request"), false).await {
            Ok(Some(found)) => found,
            Ok(None) => return self.pages().request_expired(),
            Err(e) => return self.pages().auth_error(&e),
        };
        match page {
            Page::SignIn => {
                self.sign_in(req, Target::Flow(&pending, &client), csrf_token, &form)
                    .await
            }
            Page::SignUp => {
                self.sign_up(req, &pending, &client, csrf_token, &form)
                    .await
            }
            Page::Consent => self.consent(req, &pending, &client, &form).await,
        }
    }

    async fn sign_in(
        &self,
        req: &Request,
        target: Target<'_>,
        csrf_token: &str,
        form: &FormParams,
    ) -> Response {
        let username = field(form, "username").unwrap_or_default();
        let password = field(form, "password").unwrap_or_default();
        let refused = |status, message| {
            self.sign_in_page(status, target, csrf_token, username, Some(message))
        };
        if username.is_empty() || password.is_empty() {
            return refused(
                StatusCode::BAD_REQUEST,
                "Enter your username or email and your password.",
            );
        }
        let step = self
            .service()
            .browser_password_step(username, password, target.request_id())
            .await;
        match step {
            Ok(PasswordStep::SignedIn(signed_in)) => {
                metrics::record_login("success");
                finish_sign_in(self.state, req, target, signed_in).await
            }
            Ok(PasswordStep::SecondFactor(due)) => {
                metrics::record_login("second_factor");
                let cookie = self.pages().cookies.set_second_factor(due.token.expose());
                with_cookie(see_other(super::second_factor::PATH), Some(cookie))
            }
            Err(e @ (AuthError::InvalidCredentials | AuthError::AccountDisabled)) => {
                metrics::record_login(metrics::outcome_of(&e));
                refused(
                    StatusCode::UNAUTHORIZED,
                    "Incorrect username, email or password.",
                )
            }
            Err(e @ AuthError::EmailNotVerified) => {
                metrics::record_login(metrics::outcome_of(&e));
                refused(
                    StatusCode::FORBIDDEN,
                    "Confirm your email address first: open the link in the message we sent to it.",
                )
            }
            Err(e) => {
                metrics::record_login(metrics::outcome_of(&e));
                self.pages().auth_error(&e)
            }
        }
    }

    async fn sign_up(
        &self,
        req: &Request,
        pending: &PendingAuthorization,
        client: &Client,
        csrf_token: &str,
        form: &FormParams,
    ) -> Response {
        let registration = Registration {
            username: field(form, "username").unwrap_or_default().to_owned(),
            email: field(form, "email").unwrap_or_default().to_owned(),
            password: field(form, "password").unwrap_or_default().to_owned(),
        };
        let entered = (registration.username.as_str(), registration.email.as_str());
        match self
            .service()
            .browser_sign_up(
                &registration,
                &crate::mail::flow_locales(req, pending.params.ui_locales.as_deref()),
            )
            .await
        {
            Ok(signed_in) => {
                metrics::record_registration("success");
                finish_sign_in(self.state, req, Target::Flow(pending, client), signed_in).await
            }
            Err(AuthError::Validation(errors)) => {
                metrics::record_registration("invalid");
                self.sign_up_page(
                    StatusCode::BAD_REQUEST,
                    pending,
                    client,
                    csrf_token,
                    entered,
                    Some("Please correct the highlighted fields."),
                    &errors.0,
                )
            }
            Err(AuthError::Conflict(field)) => {
                metrics::record_registration("conflict");
                let message = format!("That {field} is already taken.");
                let errors = [auth_core::FieldError::new(
                    if field == auth_core::UniqueField::Email {
                        "email"
                    } else {
                        "username"
                    },
                    message.clone(),
                )];
                self.sign_up_page(
                    StatusCode::CONFLICT,
                    pending,
                    client,
                    csrf_token,
                    entered,
                    Some(&message),
                    &errors,
                )
            }
            Err(e) => self.pages().auth_error(&e),
        }
    }

    async fn consent(
        &self,
        req: &Request,
        pending: &PendingAuthorization,
        client: &Client,
        form: &FormParams,
    ) -> Response {
        let browser = match browser_session(self.state, req).await {
            Ok(Some(browser)) => browser,
            Ok(None) => return see_other(&format!("/sign-in?request={}", pending.id)),
            Err(e) => return self.pages().auth_error(&e),
        };
        match field(form, "decision") {
            Some("allow") => {
                if let Err(e) = self
                    .service()
                    .record_consent(&browser.1, &pending.params)
                    .await
                {
                    return self.pages().auth_error(&e);
                }
                let progress = Progress {
                    signed_in: browser.0.auth_time >= pending.created_at,
                    consented: true,
                };
                continue_after(self.state, pending, client, &browser, progress).await
            }
            Some("deny") => {
                if let Err(e) = self.service().finish_pending(pending.id).await {
                    return self.pages().auth_error(&e);
                }
                metrics::record_authorization("denied");
                let redirect = AuthService::<S>::denied(&pending.params);
                see_other(&client_redirect_url(&redirect, &self.pages().issuer))
            }
            _ => self.pages().error(
                StatusCode::BAD_REQUEST,
                "No choice was made",
                "Choose Allow or Deny.",
                "Go back and choose one of the two buttons.",
            ),
        }
    }

    fn sign_in_page(
        &self,
        status: StatusCode,
        target: Target<'_>,
        csrf_token: &str,
        username: &str,
        error: Option<&str>,
    ) -> Response {
        let (client_name, request_id) = match target {
            Target::Flow(pending, client) => (Some(&client.name), pending.id.to_string()),
            Target::Account => (None, String::new()),
        };
        let with_request = |path: &str| match target {
            Target::Flow(pending, _) => format!("{path}?request={}", pending.id),
            Target::Account => path.to_owned(),
        };
        self.pages().page(
            status,
            "sign_in.html",
            context! {
                client_name,
                csrf_token,
                request_id,
                username,
                error,
                sign_up_url => matches!(target, Target::Flow(..)).then(|| with_request("/sign-up")),
                forgot_password_url => with_request("/forgot-password"),
                passkeys => self.service().passkeys_enabled(),
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn sign_up_page(
        &self,
        status: StatusCode,
        pending: &PendingAuthorization,
        client: &Client,
        csrf_token: &str,
        (username, email): (&str, &str),
        error: Option<&str>,
        errors: &[auth_core::FieldError],
    ) -> Response {
        self.pages().page(
            status,
            "sign_up.html",
            context! {
                client_name => &client.name,
                csrf_token,
                request_id => pending.id.to_string(),
                username,
                email,
                error,
                errors => field_errors(errors),
                sign_in_url => format!("/sign-in?request={}", pending.id),
            },
        )
    }

    fn consent_page(
        &self,
        pending: &PendingAuthorization,
        client: &Client,
        csrf_token: &str,
        user: &User,
    ) -> Response {
        let scopes: Vec<_> = pending
            .params
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|scope| {
                let (label, detail) = describe_scope(scope);
                context! { label, detail }
            })
            .collect();
        self.pages().page(
            StatusCode::OK,
            "consent.html",
            context! {
                client_name => &client.name,
                csrf_token,
                request_id => pending.id.to_string(),
                username => &user.username,
                scopes,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::AuthorizeErrorCode;

    #[test]
    fn client_redirects_carry_state_and_iss_and_keep_the_query() {
        let ok = ClientRedirect {
            redirect_uri: "https://app.example/cb?tenant=a".into(),
            state: Some("s p&a=ce".into()),
            outcome: Ok("the-code".into()),
        };
        assert_eq!(
            client_redirect_url(&ok, "https://id.example"),
            "https://app.example/cb?tenant=a&code=the-code&state=s+p%26a%3Dce&iss=https%3A%2F%2Fid.example"
        );
        let denied = ClientRedirect {
            redirect_uri: "https://app.example/cb".into(),
            state: None,
            outcome: Err((AuthorizeErrorCode::AccessDenied, "no".into())),
        };
        assert_eq!(
            client_redirect_url(&denied, "http://127.0.0.1:8080"),
            "https://app.example/cb?error=access_denied&error_description=no&iss=http%3A%2F%2F127.0.0.1%3A8080"
        );
    }
}
