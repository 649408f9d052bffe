//! The pages of the mail flows: `/forgot-password` (**Forgot password?**),
//! and the two pages links in messages open, `/password/reset` and
//! `/email/confirm`.
//!
//! Links are scanner-safe: `GET` and `HEAD` only look the token up and show
//! a form; the form's `POST` (CSRF-protected) spends it. A used or expired
//! link answers `410` with a page that offers the next step.

use std::sync::Arc;

use auth_core::{AuthError, LinkPurpose, LinkState, Store, UniqueField};
use minijinja::{context, Value};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, Request, Response};

use super::flow::{field, with_cookie};
use super::{field_errors, Pages};
use crate::api::body::{parse_form, FormParams};
use crate::api::AppState;
use crate::mail::request_locales;

/// Which mail page an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPage {
    ForgotPassword,
    ResetPassword,
    ConfirmEmail,
}

/// One mail page: `GET`/`HEAD` show it, `POST` submits its form.
#[derive(Debug)]
pub struct MailPageEndpoint<S> {
    state: Arc<AppState<S>>,
    page: MailPage,
}

impl<S> MailPageEndpoint<S> {
    pub fn new(state: Arc<AppState<S>>, page: MailPage) -> Self {
        Self { state, page }
    }
}

impl<S: Store> Endpoint for MailPageEndpoint<S> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let pages = MailPages { state: &self.state };
        if req.method() != Method::POST {
            let query =
                parse_form(req.uri().query().unwrap_or_default().as_bytes()).unwrap_or_default();
            return Ok(pages.show(self.page, &req, &query).await);
        }
        Ok(
            match super::posted_form(&self.state.pages, &mut req).await {
                Ok(form) => pages.submit(self.page, &req, &form).await,
                Err(refused) => refused,
            },
        )
    }
}

struct MailPages<'a, S> {
    state: &'a Arc<AppState<S>>,
}

/// The purposes a page's links may have.
fn purposes(page: MailPage) -> &'static [LinkPurpose] {
    match page {
        MailPage::ResetPassword => &[LinkPurpose::ResetPassword],
        MailPage::ConfirmEmail => &[LinkPurpose::VerifyEmail, LinkPurpose::ChangeEmail],
        MailPage::ForgotPassword => &[],
    }
}

impl<S: Store> MailPages<'_, S> {
    fn pages(&self) -> &Pages {
        &self.state.pages
    }

    async fn show(&self, page: MailPage, req: &Request, query: &FormParams) -> Response {
        let (csrf_secret, set_csrf) = self.pages().cookies.csrf_for_page(req);
        let csrf_token = super::cookies::csrf_token(&csrf_secret);
        let resp = match page {
            MailPage::ForgotPassword => self.forgot_page(
                StatusCode::OK,
                &csrf_token,
                field(query, "request"),
                "",
                Value::UNDEFINED,
            ),
            MailPage::ResetPassword | MailPage::ConfirmEmail => {
                let token = field(query, "token").unwrap_or_default();
                match self.state.service.link_state(token, purposes(page)).await {
                    Ok(LinkState::Valid { link, user }) => match page {
                        MailPage::ResetPassword => self.reset_page(
                            StatusCode::OK,
                            &csrf_token,
                            token,
                            &user.username,
                            Value::UNDEFINED,
                        ),
                        _ => self.pages().page(
                            StatusCode::OK,
                            "confirm_email.html",
                            context! {
                                csrf_token, token,
                                username => &user.username,
                                email => &link.email,
                                change => link.purpose == LinkPurpose::ChangeEmail,
                            },
                        ),
                    },
                    Ok(gone) => self.gone(&gone),
                    Err(e) => self.pages().auth_error(&e),
                }
            }
        };
        with_cookie(resp, set_csrf)
    }

    async fn submit(&self, page: MailPage, req: &Request, form: &FormParams) -> Response {
        let csrf_token = field(form, "csrf_token").unwrap_or_default();
        let locales = request_locales(req);
        let service = &self.state.service;
        match page {
            MailPage::ForgotPassword => {
                let email = field(form, "email").unwrap_or_default();
                let client = self.state.rate_limiter.client(req).to_string();
                match service.admit_password_reset(email, Some(&client)).await {
                    Ok(email) => {
                        crate::api::send_reset_later(self.state, email, locales);
                        let back =
                            field(form, "request").map(|id| format!("/sign-in?request={id}"));
                        self.notice(
                            "Check your email",
                            "If an account has this email address, a message with a link to choose a new password is on its way.",
                            Some("The link works once and expires soon. No message? Check your spam folder, or try again in a few minutes."),
                            back.as_deref().map(|url| (url, "Back to sign-in")),
                        )
                    }
                    Err(AuthError::Validation(errors)) => self.forgot_page(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        csrf_token,
                        field(form, "request"),
                        email,
                        field_errors(&errors.0),
                    ),
                    Err(AuthError::RateLimited { retry_after }) => self.pages().too_many_requests(
                        "Too many reset links were asked for this address or from your network.",
                        retry_after,
                    ),
                    Err(e) => self.pages().auth_error(&e),
                }
            }
            MailPage::ResetPassword => {
                let token = field(form, "token").unwrap_or_default();
                let password = field(form, "new_password").unwrap_or_default();
                match service
                    .complete_password_reset(token, password, &locales)
                    .await
                {
                    Ok(None) => with_cookie(
                        self.notice(
                            "Your password was changed",
                            "You can now sign in with your new password. Every device that was signed in has been signed out.",
                            None,
                            None,
                        ),
                        Some(self.pages().cookies.clear_session()),
                    ),
                    Ok(Some(gone)) => self.gone(&gone),
                    Err(AuthError::Validation(errors)) => {
                        let username = match service.link_state(token, purposes(page)).await {
                            Ok(LinkState::Valid { user, .. }) => user.username,
                            _ => String::new(),
                        };
                        self.reset_page(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            csrf_token,
                            token,
                            &username,
                            field_errors(&errors.0),
                        )
                    }
                    Err(e) => self.pages().auth_error(&e),
                }
            }
            MailPage::ConfirmEmail => {
                let token = field(form, "token").unwrap_or_default();
                match service.confirm_email(token, &locales).await {
                    Ok(None) => self.notice(
                        "Email address confirmed",
                        "Thank you: your email address is confirmed.",
                        Some("You can close this window."),
                        None,
                    ),
                    Ok(Some(gone)) => self.gone(&gone),
                    Err(AuthError::Conflict(UniqueField::Email)) => self.pages().error(
                        StatusCode::CONFLICT,
                        "This address is taken",
                        "Another account uses this email address now, so it cannot be yours.",
                        "Nothing was changed. Ask for the change again with another address.",
                    ),
                    Err(e) => self.pages().auth_error(&e),
                }
            }
        }
    }

    fn forgot_page(
        &self,
        status: StatusCode,
        csrf_token: &str,
        request_id: Option<&str>,
        email: &str,
        errors: Value,
    ) -> Response {
        self.pages().page(
            status,
            "forgot_password.html",
            context! {
                csrf_token, email, errors,
                request_id,
                sign_in_url => request_id.map(|id| format!("/sign-in?request={id}")),
            },
        )
    }

    fn reset_page(
        &self,
        status: StatusCode,
        csrf_token: &str,
        token: &str,
        username: &str,
        errors: Value,
    ) -> Response {
        self.pages().page(
            status,
            "reset_password.html",
            context! { csrf_token, token, username, errors },
        )
    }

    fn notice(
        &self,
        title: &str,
        message: &str,
        detail: Option<&str>,
        next: Option<(&str, &str)>,
    ) -> Response {
        self.pages().page(
            StatusCode::OK,
            "notice.html",
            context! {
                title, message, detail,
                next_url => next.map(|(url, _)| url),
                next_label => next.map(|(_, label)| label),
            },
        )
    }

    /// A link that cannot be used: `410` for used or expired ones, `404`
    /// for unknown ones, each with the next step.
    fn gone(&self, state: &LinkState) -> Response {
        let (status, title, message, purpose) = match state {
            LinkState::Used(purpose) => (
                StatusCode::GONE,
                "This link was already used",
                "Each link in our messages works only once.",
                Some(*purpose),
            ),
            LinkState::Expired(purpose) => (
                StatusCode::GONE,
                "This link has expired",
                "Links in our messages work only for a limited time.",
                Some(*purpose),
            ),
            LinkState::Unknown | LinkState::Valid { .. } => (
                StatusCode::NOT_FOUND,
                "This link is not valid",
                "The link is incomplete, or it is no longer valid.",
                None,
            ),
        };
        let (next_step, next_url, next_label) = match purpose {
            Some(LinkPurpose::ResetPassword) | None => (
                "If you still need to reset your password, ask for a new link.",
                "/forgot-password",
                "Ask for a new reset link",
            ),
            Some(_) => (
                "If your address is not confirmed yet, sign in to the application and ask it to send a new link.",
                "",
                "",
            ),
        };
        self.pages().page(
            status,
            "error.html",
            context! {
                title, message, next_step,
                next_url => (!next_url.is_empty()).then_some(next_url),
                next_label,
            },
        )
    }
}
