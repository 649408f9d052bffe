//! `/account`: the signed-in person's own page — sessions (each with
//! **Sign out**), **Change password**, **Set up authenticator app**,
//! recovery codes, **Add passkey**, and **Remove** for each factor.
//!
//! Every action is a plain form (CSRF-protected) answered with a redirect
//! back here or with a page, so everything but adding a passkey works
//! without JavaScript. Without a sign-in session the page sends the
//! browser to the sign-in page, which brings it back.

use std::sync::Arc;

use auth_core::{AuthError, BrowserSession, FactorKind, SessionRef, Store, User};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use minijinja::{context, Value};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, Request, Response};
use uuid::Uuid;

use super::describe_scope;
use super::flow::{browser_session, field, see_other, with_cookie};
use crate::api::body::FormParams;
use crate::api::AppState;

/// The account page; its actions live below it.
pub const PATH: &str = "/account";

#[derive(Debug)]
pub struct AccountEndpoint<S> {
    state: Arc<AppState<S>>,
}

impl<S> AccountEndpoint<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

impl<S: Store> Endpoint for AccountEndpoint<S> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let state = &*self.state;
        let (session, user) = match browser_session(state, &req).await {
            Ok(Some(found)) => found,
            // Signed out: sign in, then come back here.
            Ok(None) => return Ok(see_other("/sign-in")),
            Err(e) => return Ok(state.pages.auth_error(&e)),
        };
        let (csrf_secret, set_csrf) = state.pages.cookies.csrf_for_page(&req);
        let csrf_token = super::cookies::csrf_token(&csrf_secret);
        let locales = crate::mail::request_locales(&req);
        let page = Account {
            state,
            session: &session,
            user: &user,
            csrf_token: &csrf_token,
            locales: &locales,
        };
        let action = req.uri().path().trim_start_matches(PATH).to_owned();
        if req.method() != Method::POST {
            let resp = match action.as_str() {
                "" | "/" => page.overview(StatusCode::OK, None, None).await,
                "/totp" => page.totp_setup(None).await,
                _ => state.pages.error(
                    StatusCode::NOT_FOUND,
                    "Page not found",
                    "There is no such page.",
                    "Go back to your account.",
                ),
            };
            return Ok(with_cookie(resp, set_csrf));
        }
        Ok(match super::posted_form(&state.pages, &mut req).await {
            Ok(form) => page.act(&action, &form).await,
            Err(refused) => refused,
        })
    }
}

struct Account<'a, S> {
    state: &'a AppState<S>,
    session: &'a BrowserSession,
    user: &'a User,
    csrf_token: &'a str,
    /// The browser's languages, for the messages an action sends.
    locales: &'a [String],
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%-d %b %Y, %H:%M UTC").to_string()
}

impl<S: Store> Account<'_, S> {
    async fn act(&self, action: &str, form: &FormParams) -> Response {
        let service = &self.state.service;
        let result = match action {
            "/password" => return self.change_password(form).await,
            "/email" => return self.change_email(form).await,
            "/totp" => return self.confirm_totp(form).await,
            "/passkeys" => return self.add_passkey(form).await,
            "/recovery-codes" => match service.regenerate_recovery_codes(self.user).await {
                Ok(codes) => return self.recovery_codes_page(&codes, false),
                Err(e) => Err(e),
            },
            "/factors/remove" => {
                match field(form, "factor").and_then(|f| Uuid::parse_str(f).ok()) {
                    Some(id) => service.remove_factor(self.user, id).await,
                    None => Err(AuthError::FactorNotFound),
                }
            }
            "/apps/remove" => match field(form, "client").filter(|c| !c.is_empty()) {
                Some(client_id) => service
                    .withdraw_consent(self.user, client_id)
                    .await
                    .map(|_| ()),
                None => Err(AuthError::ConsentNotFound),
            },
            "/sessions/end" => match parse_session(field(form, "session")) {
                Some(which) => {
                    let own_browser = which == SessionRef::Browser(self.session.id);
                    match service.end_own_session(self.user, which).await {
                        // Signing this browser out: off to the signed-out page.
                        Ok(()) if own_browser => {
                            let cookie = self.state.pages.cookies.clear_session();
                            return with_cookie(see_other("/sign-in"), Some(cookie));
                        }
                        other => other,
                    }
                }
                None => Err(AuthError::SessionNotFound),
            },
            _ => {
                return self.state.pages.error(
                    StatusCode::NOT_FOUND,
                    "Page not found",
                    "There is no such page.",
                    "Go back to your account.",
                )
            }
        };
        match result {
            Ok(()) => see_other(PATH),
            Err(
                AuthError::FactorNotFound | AuthError::SessionNotFound | AuthError::ConsentNotFound,
            ) => {
                self.overview(
                    StatusCode::NOT_FOUND,
                    Some("That was already removed or signed out."),
                    None,
                )
                .await
            }
            Err(e) => self.state.pages.auth_error(&e),
        }
    }

    async fn overview(
        &self,
        status: StatusCode,
        error: Option<&str>,
        notice: Option<&str>,
    ) -> Response {
        let service = &self.state.service;
        let overview = match service.account_overview(self.user).await {
            Ok(overview) => overview,
            Err(e) => return self.state.pages.auth_error(&e),
        };
        let factor_view = |kind: FactorKind| -> Vec<Value> {
            overview
                .factors
                .iter()
                .filter(|f| f.kind == kind)
                .map(|f| {
                    context! {
                        id => f.id.to_string(),
                        name => &f.name,
                        added => when(f.created_at),
                        last_used => f.last_used_at.map(when),
                    }
                })
                .collect()
        };
        let browsers: Vec<Value> = overview
            .browser_sessions
            .iter()
            .map(|b| {
                context! {
                    value => format!("browser:{}", b.id),
                    current => b.id == self.session.id,
                    started => when(b.created_at),
                    how => describe_amr(&b.amr),
                }
            })
            .collect();
        let name_of = |id: &String| overview.client_names.get(id).unwrap_or(id).clone();
        let apps: Vec<Value> = overview
            .sessions
            .iter()
            .map(|s| {
                context! {
                    value => format!("api:{}", s.id),
                    client => name_of(&s.client_id),
                    started => when(s.created_at),
                }
            })
            .collect();
        let allowed: Vec<Value> = overview
            .consents
            .iter()
            .map(|consent| {
                // No scope asked: the client only learns who the person is.
                let scopes = match consent.scope.as_str() {
                    "" => "openid",
                    scope => scope,
                };
                let abilities: Vec<String> = scopes
                    .split_whitespace()
                    .map(|scope| describe_scope(scope).0)
                    .collect();
                context! {
                    client_id => &consent.client_id,
                    name => name_of(&consent.client_id),
                    abilities => abilities.join(" · "),
                    since => when(consent.granted_at),
                }
            })
            .collect();
        self.state.pages.page(
            status,
            "account.html",
            context! {
                csrf_token => self.csrf_token,
                username => &self.user.username,
                email => &self.user.email,
                email_verified => self.user.email_verified,
                apps_totp => factor_view(FactorKind::Totp),
                passkeys => factor_view(FactorKind::Passkey),
                passkeys_enabled => service.passkeys_enabled(),
                has_factor => !overview.factors.is_empty(),
                recovery_codes_left => overview.recovery_codes_left,
                browsers,
                apps,
                allowed,
                error,
                notice,
            },
        )
    }

    async fn change_password(&self, form: &FormParams) -> Response {
        let current = field(form, "current_password").unwrap_or_default();
        let new = field(form, "new_password").unwrap_or_default();
        match self
            .state
            .service
            .change_password_in_browser(self.session, self.user, current, new, self.locales)
            .await
        {
            Ok(signed_in) => {
                let cookie = self
                    .state
                    .pages
                    .cookies
                    .set_session(signed_in.cookie.expose());
                let page = self
                    .overview(
                        StatusCode::OK,
                        None,
                        Some("Your password was changed. Every other session was signed out."),
                    )
                    .await;
                with_cookie(page, Some(cookie))
            }
            Err(AuthError::InvalidCredentials) => {
                self.overview(
                    StatusCode::FORBIDDEN,
                    Some("The current password is not right. Nothing was changed."),
                    None,
                )
                .await
            }
            Err(AuthError::Validation(errors)) => {
                let message = errors.0.first().map_or_else(
                    || "The new password is not allowed.".to_owned(),
                    |e| e.message.clone(),
                );
                self.overview(StatusCode::BAD_REQUEST, Some(&message), None)
                    .await
            }
            Err(e) => self.state.pages.auth_error(&e),
        }
    }

    /// An email change: a link goes to the new address; the account keeps
    /// the old one until it is opened.
    async fn change_email(&self, form: &FormParams) -> Response {
        let new_email = field(form, "new_email").unwrap_or_default();
        let password = field(form, "password").unwrap_or_default();
        let (status, error, notice) = match self
            .state
            .service
            .request_email_change(self.user, password, new_email, self.locales)
            .await
        {
            Ok(()) => (
                StatusCode::OK,
                None,
                Some(format!(
                    "We sent a link to {new_email}. Your address changes when you open it."
                )),
            ),
            Err(AuthError::InvalidCredentials) => (
                StatusCode::FORBIDDEN,
                Some("The password is not right. Nothing was changed.".to_owned()),
                None,
            ),
            Err(AuthError::Validation(errors)) => (
                StatusCode::BAD_REQUEST,
                Some(errors.0.first().map_or_else(
                    || "That email address is not valid.".to_owned(),
                    |e| e.message.clone(),
                )),
                None,
            ),
            Err(AuthError::Conflict(_)) => (
                StatusCode::CONFLICT,
                Some("That email address belongs to another account.".to_owned()),
                None,
            ),
            Err(e) => return self.state.pages.auth_error(&e),
        };
        self.overview(status, error.as_deref(), notice.as_deref())
            .await
    }

    /// The setup page: a QR code, the URI and the secret, and **Code**.
    async fn totp_setup(&self, error: Option<&str>) -> Response {
        let service = &self.state.service;
        let enrolment = match service.start_totp_enrolment(self.user).await {
            Ok(enrolment) => enrolment,
            Err(e) => return self.state.pages.auth_error(&e),
        };
        let qr = qr_data_uri(&enrolment.uri);
        self.state.pages.page(
            if error.is_some() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            },
            "totp_setup.html",
            context! {
                csrf_token => self.csrf_token,
                enrolment => enrolment.token.expose(),
                otpauth_uri => &enrolment.uri,
                secret => &enrolment.secret_base32,
                qr,
                error,
            },
        )
    }

    async fn confirm_totp(&self, form: &FormParams) -> Response {
        let token = field(form, "enrolment").unwrap_or_default();
        let code = field(form, "code").unwrap_or_default();
        match self
            .state
            .service
            .confirm_totp_enrolment(self.user, token, code)
            .await
        {
            Ok(Some(codes)) => self.recovery_codes_page(&codes, true),
            Ok(None) => see_other(PATH),
            // A wrong code: a fresh secret, so a code seen over a shoulder
            // is worth nothing.
            Err(AuthError::InvalidCode) => {
                self.totp_setup(Some(
                    "That code is not right. Scan the new QR code and enter the code it shows.",
                ))
                .await
            }
            Err(AuthError::CeremonyExpired) => {
                self.totp_setup(Some("The setup expired. Scan the new QR code."))
                    .await
            }
            Err(AuthError::Conflict(_)) => {
                self.overview(
                    StatusCode::CONFLICT,
                    Some("An authenticator app is already set up. Remove it first to replace it."),
                    None,
                )
                .await
            }
            Err(e) => self.state.pages.auth_error(&e),
        }
    }

    async fn add_passkey(&self, form: &FormParams) -> Response {
        let (Some(ceremony), Some(credential)) =
            (field(form, "ceremony"), field(form, "credential"))
        else {
            return self
                .overview(
                    StatusCode::BAD_REQUEST,
                    Some("Adding a passkey needs JavaScript in this browser."),
                    None,
                )
                .await;
        };
        let name = field(form, "name").unwrap_or_default();
        match self
            .state
            .service
            .finish_passkey_registration(self.user, ceremony, name, credential)
            .await
        {
            Ok(Some(codes)) => self.recovery_codes_page(&codes, true),
            Ok(None) => see_other(PATH),
            Err(
                e @ (AuthError::PasskeyRefused(_)
                | AuthError::CeremonyExpired
                | AuthError::Conflict(_)),
            ) => {
                tracing::info!(user_id = %self.user.id, error = %e, "passkey registration refused");
                self.overview(
                    StatusCode::BAD_REQUEST,
                    Some("The passkey could not be added. Try again; a passkey needs a PIN, fingerprint or face check."),
                    None,
                )
                .await
            }
            Err(e) => self.state.pages.auth_error(&e),
        }
    }

    /// The codes, shown once.
    fn recovery_codes_page(&self, codes: &[String], first: bool) -> Response {
        self.state.pages.page(
            StatusCode::OK,
            "recovery_codes.html",
            context! { codes, first },
        )
    }
}

/// `api:<id>` or `browser:<id>`.
fn parse_session(value: Option<&str>) -> Option<SessionRef> {
    let (kind, id) = value?.split_once(':')?;
    let id = Uuid::parse_str(id).ok()?;
    match kind {
        "api" => Some(SessionRef::Api(id)),
        "browser" => Some(SessionRef::Browser(id)),
        _ => None,
    }
}

/// How a session signed in, in words.
fn describe_amr(amr: &[String]) -> &'static str {
    let has = |v: &str| amr.iter().any(|a| a == v);
    match (has("pwd"), has("otp"), has("hwk")) {
        (_, _, true) if has("pwd") => "password and passkey",
        (_, _, true) => "passkey",
        (true, true, _) => "password and code",
        _ => "password",
    }
}

/// The otpauth URI as a QR code, an SVG image in a `data:` URI (drawn here:
/// no external service ever sees the secret).
fn qr_data_uri(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        STANDARD.encode(svg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_references_parse_only_their_two_kinds() {
        let id = Uuid::now_v7();
        assert_eq!(
            parse_session(Some(&format!("api:{id}"))),
            Some(SessionRef::Api(id))
        );
        assert_eq!(
            parse_session(Some(&format!("browser:{id}"))),
            Some(SessionRef::Browser(id))
        );
        assert_eq!(parse_session(Some(&format!("other:{id}"))), None);
        assert_eq!(parse_session(Some("api:nope")), None);
        assert_eq!(parse_session(None), None);
    }

    #[test]
    fn the_qr_code_is_an_svg_image() {
        let uri = qr_data_uri("otpauth://totp/Tessera:ada?secret=GEZDGNBV&issuer=Tessera")
            .unwrap_or_default();
        let svg = STANDARD
            .decode(uri.trim_start_matches("data:image/svg+xml;base64,"))
            .unwrap_or_default();
        assert!(String::from_utf8_lossy(&svg).contains("<svg"));
    }
}
