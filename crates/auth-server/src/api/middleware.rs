//! Cross-cutting response behaviour.

use std::time::Instant;

use poem::http::{header, HeaderValue};
use poem::{Endpoint, IntoResponse, Request, Response, Result};

/// The OAuth endpoints, whose every response must not be cached (RFC 6749 5.1).
const OAUTH_PATHS: &[&str] = &["/token", "/revoke", "/introspect"];

/// Strict for the JSON API; Swagger UI's page needs its inline script and styles.
const CSP_API: &str = "default-src 'none'; frame-ancestors 'none'";
const CSP_DOCS: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'";

/// Cache and security headers, on every response including errors.
pub async fn response_headers<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let path = req.uri().path().to_owned();
    let mut resp = next.get_response(req).await;
    let headers = resp.headers_mut();
    if OAUTH_PATHS.contains(&path.as_str()) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let csp = if path == "/docs" || path.starts_with("/docs/") {
        CSP_DOCS
    } else {
        CSP_API
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    Ok(resp)
}

/// One line per request: method, path (never the query), status, latency.
pub async fn log_request<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.call(req).await.map(IntoResponse::into_response);
    let resp = resp.unwrap_or_else(|err| err.into_response());
    tracing::info!(
        %method,
        %path,
        status = resp.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    Ok(resp)
}
