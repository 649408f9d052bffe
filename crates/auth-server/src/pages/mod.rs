//! The hosted pages: sign-in, create account, consent, sign-out, and the
//! error page.
//!
//! Server-rendered with minijinja from templates embedded in the binary;
//! a file of the same name in `ui.templates_dir` replaces one. Every form
//! works without JavaScript and carries a CSRF token bound to the browser
//! (see [`cookies`]). What happens next in a flow is decided in `auth-core`
//! (`AuthService::next_step`); this module renders it.

pub mod account;
pub mod cookies;
pub mod flow;
pub mod logout;
pub mod mail_links;
pub mod passkeys;
pub mod second_factor;

use std::path::PathBuf;
use std::time::Duration;

use auth_core::{AuthError, FieldError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use minijinja::{context, Environment, Value};
use poem::http::{header, StatusCode};
use poem::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The built-in templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("sign_up.html", include_str!("templates/sign_up.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("error.html", include_str!("templates/error.html")),
    ("logout.html", include_str!("templates/logout.html")),
    ("signed_out.html", include_str!("templates/signed_out.html")),
    ("notice.html", include_str!("templates/notice.html")),
    (
        "forgot_password.html",
        include_str!("templates/forgot_password.html"),
    ),
    (
        "reset_password.html",
        include_str!("templates/reset_password.html"),
    ),
    (
        "confirm_email.html",
        include_str!("templates/confirm_email.html"),
    ),
    (
        "second_factor.html",
        include_str!("templates/second_factor.html"),
    ),
    ("account.html", include_str!("templates/account.html")),
    ("totp_setup.html", include_str!("templates/totp_setup.html")),
    (
        "recovery_codes.html",
        include_str!("templates/recovery_codes.html"),
    ),
];

const STYLESHEET: &str = include_str!("templates/style.css");

/// Where the stylesheet is served; the query names its content, so it can
/// be cached for a year and still change with the configuration.
pub const STYLESHEET_PATH: &str = "/ui/style.css";

/// Templates, styling and cookie settings of the pages.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
    product_name: String,
    logo_url: Option<String>,
    stylesheet: String,
    stylesheet_url: String,
    pub cookies: cookies::CookiePolicy,
    /// `iss` on every authorization response (RFC 9207).
    pub issuer: String,
}

impl Pages {
    /// Loads and compiles every template (a broken override is a start-up
    /// error, not a 500 on the first visitor).
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        let overrides: Option<PathBuf> = config.ui.templates_dir.clone();
        env.set_loader(move |name| {
            if let Some(dir) = &overrides {
                let path = dir.join(name);
                if path.is_file() {
                    return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read {}: {e}", path.display()),
                        )
                    });
                }
            }
            Ok(TEMPLATES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, source)| (*source).to_owned()))
        });
        for (name, _) in TEMPLATES {
            env.get_template(name)
                .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
        }
        let mut stylesheet = STYLESHEET.to_owned();
        if let Some(custom) = &config.ui.custom_css {
            stylesheet.push_str("\n/* ui.custom_css */\n");
            stylesheet.push_str(custom);
        }
        let version = URL_SAFE_NO_PAD.encode(&Sha256::digest(stylesheet.as_bytes())[..9]);
        Ok(Self {
            env,
            product_name: config.ui.product_name.clone(),
            logo_url: config.ui.logo_url.clone(),
            stylesheet_url: format!("{STYLESHEET_PATH}?v={version}"),
            stylesheet,
            cookies: cookies::CookiePolicy::new(&config.issuer(), config.ui.session_lifetime),
            issuer: config.issuer(),
        })
    }

    /// The stylesheet response (cacheable: its URL changes with its content).
    pub fn stylesheet(&self) -> Response {
        Response::builder()
            .content_type("text/css; charset=utf-8")
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .body(self.stylesheet.clone())
    }

    /// Renders `template` with `values` plus what every page shows.
    pub fn render(&self, template: &str, values: Value) -> Result<String, minijinja::Error> {
        let common = context! {
            product_name => &self.product_name,
            logo_url => &self.logo_url,
            stylesheet_url => &self.stylesheet_url,
        };
        self.env
            .get_template(template)?
            .render(context! { ..values, ..common })
    }

    /// An HTML response; a template that fails to render is logged and
    /// answered with a bare 500 (never the template's error text).
    pub fn page(&self, status: StatusCode, template: &str, values: Value) -> Response {
        self.rendered(status, template, values).into_response()
    }

    fn rendered(&self, status: StatusCode, template: &str, values: Value) -> RenderedPage {
        match self.render(template, values) {
            Ok(html) => RenderedPage {
                status,
                html,
                retry_after: None,
            },
            Err(e) => {
                tracing::error!(template, error = %e, "template failed to render");
                RenderedPage {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    html: "<!doctype html><title>Error</title><p>Something went wrong.</p>".into(),
                    retry_after: None,
                }
            }
        }
    }

    /// The error page.
    pub fn error(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        next_step: &str,
    ) -> Response {
        self.error_page(status, title, message, next_step)
            .into_response()
    }

    /// [`error`](Self::error) before it becomes a response.
    pub fn error_page(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        next_step: &str,
    ) -> RenderedPage {
        self.rendered(status, "error.html", context! { title, message, next_step })
    }

    /// The error page for a domain failure: one mapping for every page.
    pub fn auth_error(&self, err: &AuthError) -> Response {
        self.auth_error_page(err).into_response()
    }

    /// [`auth_error`](Self::auth_error) before it becomes a response.
    pub fn auth_error_page(&self, err: &AuthError) -> RenderedPage {
        match err {
            AuthError::Throttled { retry_after } => self
                .too_many_requests_page("Too many failed sign-ins for this account.", *retry_after),
            AuthError::RateLimited { retry_after } => {
                self.too_many_requests_page("Too many requests of this kind.", *retry_after)
            }
            AuthError::Overloaded | AuthError::StoreUnavailable => RenderedPage {
                retry_after: Some(2),
                ..self.error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "The service is busy or cannot reach its database right now.",
                    "Please try again in a moment.",
                )
            },
            AuthError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                self.error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The request could not be completed.",
                    "Please try again. If it keeps happening, contact the site's administrator.",
                )
            }
            other => self.error_page(
                StatusCode::BAD_REQUEST,
                "Request refused",
                &other.to_string(),
                "Go back to the application and try again.",
            ),
        }
    }

    /// 429 with `Retry-After`, saying when to try again.
    pub fn too_many_requests(&self, what: &str, wait: Duration) -> Response {
        self.too_many_requests_page(what, wait).into_response()
    }

    fn too_many_requests_page(&self, what: &str, wait: Duration) -> RenderedPage {
        let seconds = wait.as_secs().max(1);
        let when = if seconds < 90 {
            format!("{seconds} seconds")
        } else {
            format!("{} minutes", seconds.div_ceil(60))
        };
        RenderedPage {
            retry_after: Some(seconds),
            ..self.error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                what,
                &format!("Try again in {when}."),
            )
        }
    }

    /// 403 for a form without a valid CSRF token: nothing was changed.
    pub fn forbidden_form(&self) -> Response {
        self.error(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was not sent from this browser's session, so nothing was changed.",
            "Go back, reload the page and try again.",
        )
    }

    /// The pending request a page continues is gone.
    pub fn request_expired(&self) -> Response {
        self.error(
            StatusCode::BAD_REQUEST,
            "This sign-in request has expired",
            "The request from the application is no longer valid: it took too long, or it was \
             already completed.",
            "Go back to the application and start signing in again.",
        )
    }
}

/// A page's form as posted: read, and its CSRF token checked against this
/// browser's cookie. `Err` is the answer to give (400 unreadable, 403 not
/// from this browser); nothing was changed then.
pub async fn posted_form(
    pages: &Pages,
    req: &mut poem::Request,
) -> Result<crate::api::body::FormParams, Response> {
    let Some(form) = flow::read_form(req).await else {
        return Err(unreadable_form(pages));
    };
    if !pages
        .cookies
        .csrf_matches(req, flow::field(&form, "csrf_token"))
    {
        return Err(pages.forbidden_form());
    }
    Ok(form)
}

/// 400 for a form body that is not a readable urlencoded form.
pub fn unreadable_form(pages: &Pages) -> Response {
    pages.error(
        StatusCode::BAD_REQUEST,
        "The form could not be read",
        "The page sent something this server does not understand.",
        "Go back, reload the page and try again.",
    )
}

/// The passkey script's response (changes only with the binary).
pub fn passkey_script() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(passkeys::SCRIPT)
}

/// A rendered page and what its response needs.
#[derive(Debug)]
pub struct RenderedPage {
    pub status: StatusCode,
    pub html: String,
    /// Seconds, for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl IntoResponse for RenderedPage {
    fn into_response(self) -> Response {
        let mut builder = Response::builder()
            .status(self.status)
            .content_type("text/html; charset=utf-8");
        if let Some(seconds) = self.retry_after {
            builder = builder.header(header::RETRY_AFTER, seconds.to_string());
        }
        builder.body(self.html)
    }
}

/// Field errors as `{field: message}` for the templates (first per field).
pub fn field_errors(errors: &[FieldError]) -> Value {
    let mut map = std::collections::BTreeMap::new();
    for e in errors {
        map.entry(e.field).or_insert_with(|| e.message.clone());
    }
    Value::from_serialize(&map)
}

/// What a scope means, in words a person understands.
pub fn describe_scope(scope: &str) -> (String, Option<&'static str>) {
    let (label, detail) = match scope {
        "openid" => ("Know who you are", Some("Your account identifier")),
        "profile" => ("See your profile", Some("Your username")),
        "email" => ("See your email address", None),
        "offline_access" => (
            "Stay signed in",
            Some("Keep access while you are away, until you sign out"),
        ),
        other => return (format!("Use “{other}”"), None),
    };
    (label.to_owned(), detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Pages {
        Pages::new(&Config::default()).unwrap()
    }

    #[test]
    fn every_template_renders_and_escapes() {
        let pages = pages();
        let html = pages
            .render(
                "sign_in.html",
                context! { client_name => "<script>x</script>", csrf_token => "t", request_id => "r",
                           username => "", sign_up_url => "/sign-up?request=r" },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "escaped: {html}");
        assert!(html.contains(r#"<label for="username">Username or email</label>"#));
        assert!(html.contains(r#"name="csrf_token""#));
        for (name, _) in TEMPLATES.iter().filter(|(n, _)| *n != "base.html") {
            pages.render(name, context! {}).unwrap();
        }
    }

    #[test]
    fn templates_dir_overrides_one_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("error.html"),
            "<p>custom {{ title }} for {{ product_name }}</p>",
        )
        .unwrap();
        let mut config = Config::default();
        config.ui.templates_dir = Some(dir.path().to_owned());
        config.ui.product_name = "Acme ID".into();
        let pages = Pages::new(&config).unwrap();
        let html = pages
            .render("error.html", context! { title => "Oops" })
            .unwrap();
        assert_eq!(html, "<p>custom Oops for Acme ID</p>");
        let kept = pages.render("sign_in.html", context! {}).unwrap();
        assert!(kept.contains("Sign in"));
    }

    #[test]
    fn custom_css_changes_the_stylesheet_url() {
        let plain = pages();
        let mut config = Config::default();
        config.ui.custom_css = Some(":root { --accent: #0a7d5a; }".into());
        let custom = Pages::new(&config).unwrap();
        assert_ne!(plain.stylesheet_url, custom.stylesheet_url);
        assert!(custom.stylesheet.ends_with(":root { --accent: #0a7d5a; }"));
    }
}
