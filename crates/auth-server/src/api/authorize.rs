//! `GET|POST /authorize` (RFC 6749 §4.1.1, RFC 7636, OAuth 2.1): the start
//! of the browser flow. Checks the request (`auth-core`), then sends the
//! browser back to the client or on to a hosted page.

use std::sync::Arc;

use auth_core::{AuthorizationQuery, AuthorizeError, Progress, Store};
use poem::http::StatusCode;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Html;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use super::body::{parse_form, BodyError, FormParams, UrlEncoded};
use super::AppState;
use crate::metrics;
use crate::pages::flow::{browser_session, client_redirect_url, proceed, Next};
use crate::pages::RenderedPage;

#[derive(Tags)]
enum AuthorizeTag {
    /// The authorization-code flow: where apps send people to sign in.
    Authorization,
}

/// The parameters of an authorization request (form-encoded for `POST`).
// Read by hand (duplicates must be detected); this type only documents them.
#[allow(dead_code)]
#[derive(Object)]
pub struct AuthorizeForm {
    /// `code`.
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    /// Required when the client has more than one registered.
    pub redirect_uri: Option<String>,
    /// Space-separated.
    pub scope: Option<String>,
    /// Echoed back exactly.
    pub state: Option<String>,
    /// `BASE64URL(SHA-256(code_verifier))`, required.
    pub code_challenge: Option<String>,
    /// `S256` (required; `plain` is refused).
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    /// `none`, `login`, `consent` or `create`.
    pub prompt: Option<String>,
    /// Seconds since the last sign-in after which it is asked again.
    pub max_age: Option<String>,
    /// Pre-fills the sign-in form.
    pub login_hint: Option<String>,
    /// An ID token this server issued: the person it names is expected
    /// (signed in as someone else, they are asked to sign in again).
    pub id_token_hint: Option<String>,
    /// Preferred languages of the pages (accepted; the pages are English).
    pub ui_locales: Option<String>,
}

/// Every answer of `/authorize`.
#[derive(Debug, ApiResponse)]
pub enum AuthorizeResponse {
    /// Back to the client: `code`, `state`, `iss` — or `error`,
    /// `error_description`, `state`, `iss`.
    #[oai(status = 302)]
    Found(#[oai(header = "Location")] String),
    /// On to the sign-in, create-account or consent page.
    #[oai(status = 303)]
    SeeOther(#[oai(header = "Location")] String),
    /// The client or its redirect URI is unknown, or the request cannot be
    /// read: an HTML page, and no redirect.
    #[oai(status = 400)]
    BadRequest(Html<String>),
    /// Too many requests from this address (an HTML page).
    #[oai(status = 429)]
    TooManyRequests(Html<String>, #[oai(header = "Retry-After")] String),
    /// Something failed (an HTML page).
    #[oai(status = 500)]
    Internal(Html<String>),
    /// The store is unavailable (an HTML page).
    #[oai(status = 503)]
    Unavailable(Html<String>, #[oai(header = "Retry-After")] String),
}

pub struct AuthorizeApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> AuthorizeApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

/// The request's parameters; a repeated one is remembered as such (and
/// counts as absent).
fn query_of(form: &FormParams) -> AuthorizationQuery {
    let mut repeated = Vec::new();
    let mut get = |name: &str| match form.single(name) {
        Ok(value) => value.map(str::to_owned),
        Err(_) => {
            repeated.push(name.to_owned());
            None
        }
    };
    let mut query = AuthorizationQuery {
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        response_type: get("response_type"),
        scope: get("scope"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        nonce: get("nonce"),
        prompt: get("prompt"),
        max_age: get("max_age"),
        login_hint: get("login_hint"),
        id_token_hint: get("id_token_hint"),
        ui_locales: get("ui_locales"),
        request: get("request"),
        request_uri: get("request_uri"),
        repeated: Vec::new(),
    };
    query.repeated = repeated;
    query
}

#[OpenApi(tag = "AuthorizeTag::Authorization")]
impl<S: Store> AuthorizeApi<S> {
    /// Start signing a person in (authorization code with PKCE S256). Unknown
    /// parameters are ignored.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/authorize", method = "get")]
    async fn authorize_get(
        &self,
        req: &Request,
        response_type: Query<Option<String>>,
        client_id: Query<Option<String>>,
        redirect_uri: Query<Option<String>>,
        scope: Query<Option<String>>,
        state: Query<Option<String>>,
        code_challenge: Query<Option<String>>,
        code_challenge_method: Query<Option<String>>,
        nonce: Query<Option<String>>,
        prompt: Query<Option<String>>,
        max_age: Query<Option<String>>,
        login_hint: Query<Option<String>>,
        id_token_hint: Query<Option<String>>,
        ui_locales: Query<Option<String>>,
    ) -> AuthorizeResponse {
        let _documented_only = (
            response_type,
            client_id,
            redirect_uri,
            scope,
            state,
            code_challenge,
            code_challenge_method,
            nonce,
            prompt,
            max_age,
            login_hint,
            id_token_hint,
            ui_locales,
        );
        let form = parse_form(req.uri().query().unwrap_or_default().as_bytes());
        self.authorize(req, form, StatusCode::FOUND).await
    }

    /// The same as `GET`, with the parameters form-encoded (OpenID Connect
    /// Core §3.1.2.1).
    #[oai(path = "/authorize", method = "post")]
    async fn authorize_post(
        &self,
        req: &Request,
        body: UrlEncoded<AuthorizeForm>,
    ) -> AuthorizeResponse {
        self.authorize(req, body.result, StatusCode::SEE_OTHER)
            .await
    }
}

impl<S: Store> AuthorizeApi<S> {
    async fn authorize(
        &self,
        req: &Request,
        form: Result<FormParams, BodyError>,
        back_to_client: StatusCode,
    ) -> AuthorizeResponse {
        let pages = &self.state.pages;
        let Ok(form) = form else {
            return self.unredirectable("The request could not be read.");
        };
        let service = &self.state.service;
        let (params, client) = match service.check_authorization(&query_of(&form)).await {
            Ok(checked) => checked,
            Err(AuthorizeError::Unredirectable(why)) => return self.unredirectable(&why),
            Err(AuthorizeError::Redirect(redirect)) => {
                metrics::record_authorization("error");
                let url = client_redirect_url(&redirect, &pages.issuer);
                return back(back_to_client, url);
            }
            Err(AuthorizeError::Failed(e)) => return self.failed(&e),
        };
        let browser = match browser_session(&self.state, req).await {
            Ok(browser) => browser,
            Err(e) => return self.failed(&e),
        };
        let next = proceed(
            &self.state,
            &params,
            &client,
            browser.as_ref(),
            Progress::default(),
            None,
        )
        .await;
        match next {
            Ok(Next::Client(url)) => back(back_to_client, url),
            Ok(Next::Page(url)) => {
                metrics::record_authorization("page");
                AuthorizeResponse::SeeOther(url)
            }
            Err(e) => self.failed(&e),
        }
    }

    fn unredirectable(&self, why: &str) -> AuthorizeResponse {
        metrics::record_authorization("unredirectable");
        page_response(self.state.pages.error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            why,
            "For your safety you were not sent anywhere. Go back to the application and try \
             again, or contact its developer.",
        ))
    }

    fn failed(&self, err: &auth_core::AuthError) -> AuthorizeResponse {
        page_response(self.state.pages.auth_error_page(err))
    }
}

/// An error page as the documented response of its status.
fn page_response(page: RenderedPage) -> AuthorizeResponse {
    let retry_after = page.retry_after.unwrap_or(2).to_string();
    let html = Html(page.html);
    match page.status {
        StatusCode::SERVICE_UNAVAILABLE => AuthorizeResponse::Unavailable(html, retry_after),
        StatusCode::TOO_MANY_REQUESTS => AuthorizeResponse::TooManyRequests(html, retry_after),
        StatusCode::BAD_REQUEST => AuthorizeResponse::BadRequest(html),
        _ => AuthorizeResponse::Internal(html),
    }
}

fn back(status: StatusCode, url: String) -> AuthorizeResponse {
    if status == StatusCode::FOUND {
        AuthorizeResponse::Found(url)
    } else {
        AuthorizeResponse::SeeOther(url)
    }
}
