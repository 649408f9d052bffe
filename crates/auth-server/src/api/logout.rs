//! `/logout` in the OpenAPI document: RP-initiated logout is a protocol
//! endpoint relying parties call (`end_session_endpoint`), so it is
//! documented like `/authorize`; what it does is in [`crate::pages::logout`].

use std::sync::Arc;

use auth_core::Store;
use poem::{IntoResponse, Request, Response};
use poem_openapi::param::Query;
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use super::body::{parse_form, UrlEncoded};
use super::AppState;
use crate::pages::logout::sign_out;

#[derive(Tags)]
enum LogoutTag {
    /// OpenID Connect: claims about the signed-in person, and signing out.
    OpenIdConnect,
}

/// The parameters of a logout request (form-encoded for `POST`).
#[allow(dead_code)]
#[derive(Object)]
pub struct LogoutForm {
    /// An ID token this server issued to the app (expired ones too).
    pub id_token_hint: Option<String>,
    /// The app asking (must match the hint's audience when both are sent).
    pub client_id: Option<String>,
    /// Where to send the browser afterwards: exactly one registered for the app.
    pub post_logout_redirect_uri: Option<String>,
    /// Echoed back on the redirect.
    pub state: Option<String>,
}

/// An HTML page or a redirect, as the hosted pages answer.
#[derive(Debug)]
pub struct PageReply(pub Response);

impl IntoResponse for PageReply {
    fn into_response(self) -> Response {
        self.0
    }
}

fn html(status: u16, description: &'static str) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: "text/html; charset=utf-8",
            schema: String::schema_ref(),
        }],
        headers: Vec::new(),
    }
}

fn header(name: &str, description: &str) -> MetaHeader {
    MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required: false,
        deprecated: false,
        schema: String::schema_ref(),
    }
}

impl ApiResponse for PageReply {
    fn meta() -> MetaResponses {
        let mut signed_out = html(
            200,
            "The **Sign out** confirmation page (no valid hint), or the \"signed out\" page.",
        );
        signed_out.headers = vec![header(
            "Set-Cookie",
            "The CSRF cookie, or the sign-in cookie removed.",
        )];
        let mut back = MetaResponse {
            description: "Signed out: back to `post_logout_redirect_uri` (with `state`).",
            status: Some(303),
            status_range: None,
            content: Vec::new(),
            headers: vec![
                header("Location", "The registered post-logout redirect URI."),
                header("Set-Cookie", "The sign-in cookie removed."),
            ],
        };
        back.headers[0].required = true;
        let mut throttled = html(429, "Too many requests from this address.");
        throttled.headers = vec![header("Retry-After", "Seconds.")];
        let mut unavailable = html(503, "The store is unavailable.");
        unavailable.headers = vec![header("Retry-After", "Seconds.")];
        MetaResponses {
            responses: vec![
                signed_out,
                back,
                html(
                    400,
                    "An unregistered redirect URI, a hint this server did not sign, an unknown \
                     client: a page, never a redirect.",
                ),
                html(
                    403,
                    "The confirmation form without this browser's CSRF token.",
                ),
                throttled,
                html(500, "Something failed."),
                unavailable,
            ],
        }
    }

    fn register(_registry: &mut Registry) {}
}

pub struct LogoutApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> LogoutApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(tag = "LogoutTag::OpenIdConnect")]
impl<S: Store> LogoutApi<S> {
    /// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): signs
    /// the browser out and ends every session its sign-in started.
    #[oai(path = "/logout", method = "get")]
    async fn logout_get(
        &self,
        req: &Request,
        id_token_hint: Query<Option<String>>,
        client_id: Query<Option<String>>,
        post_logout_redirect_uri: Query<Option<String>>,
        state: Query<Option<String>>,
    ) -> PageReply {
        let _documented_only = (id_token_hint, client_id, post_logout_redirect_uri, state);
        let params = parse_form(req.uri().query().unwrap_or_default().as_bytes());
        PageReply(sign_out(&self.state, req, params.ok()).await)
    }

    /// The same as `GET`, form-encoded; also what the confirmation page's
    /// **Sign out** button sends (with its CSRF token).
    #[oai(path = "/logout", method = "post")]
    async fn logout_post(&self, req: &Request, body: UrlEncoded<LogoutForm>) -> PageReply {
        PageReply(sign_out(&self.state, req, body.result.ok()).await)
    }
}
