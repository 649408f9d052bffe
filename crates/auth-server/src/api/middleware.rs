//! Cross-cutting response behaviour.

use std::time::Instant;

use poem::http::{header, HeaderValue};
use poem::{Endpoint, IntoResponse, Request, Response, Result};
use tracing::Instrument;

use super::routes::{self, Csp};

/// Strict for the JSON API; Swagger UI's page needs its inline script and styles.
const CSP_API: &str = "default-src 'none'; frame-ancestors 'none'";
/// The hosted pages load our stylesheet, at most a logo, and one script of
/// ours (passkeys; no inline script). No `form-action`: browsers apply it
/// to the redirect back to the client.
const CSP_PAGE: &str = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
    script-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";
const CSP_DOCS: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'";

/// Cache and security headers, on every response including errors.
pub async fn response_headers<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let route = routes::find(req.uri().path());
    let mut resp = next.get_response(req).await;
    let status = resp.status();
    let headers = resp.headers_mut();
    if let Some(route) = route {
        if status == poem::http::StatusCode::METHOD_NOT_ALLOWED {
            if let Ok(allow) = HeaderValue::from_str(&routes::allow_header(route)) {
                headers.insert(header::ALLOW, allow);
            }
        }
        // OAuth responses carry credentials, pages carry CSRF tokens and
        // codes, `/userinfo` personal data: never cached (RFC 6749 §5.1).
        if route.no_store {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        }
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let csp = match route.map(|r| r.csp) {
        Some(Csp::Docs) => CSP_DOCS,
        Some(Csp::Page) => CSP_PAGE,
        Some(Csp::Api) | None => CSP_API,
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    Ok(resp)
}

const REQUEST_ID: &str = "x-request-id";

/// The request's id, put where inner middleware can read it.
#[derive(Debug, Clone)]
struct RequestId(String);

/// Runs the request with its origin (client address as the rate limiter
/// sees it, behind trusted proxies too, and request id) known to
/// `auth-core`, which stamps both on every audit record the request makes.
pub async fn audit_origin<E: Endpoint, S: auth_core::Store>(
    next: E,
    req: Request,
    state: std::sync::Arc<crate::AppState<S>>,
) -> Result<Response> {
    // No peer address (an in-process call): no client address either.
    let client_address = req
        .remote_addr()
        .as_socket_addr()
        .map(|_| state.rate_limiter.client(&req).to_string());
    let origin = auth_core::Origin {
        client_address,
        request_id: req.extensions().get::<RequestId>().map(|id| id.0.clone()),
    };
    auth_core::audit::with_origin(origin, next.call(req))
        .await
        .map(IntoResponse::into_response)
}

/// The caller's `X-Request-Id` when it is a sane token (at most 128
/// visible ASCII characters), else a fresh random (v4) UUID.
fn request_id(req: &Request) -> String {
    req.header(REQUEST_ID)
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(fresh_request_id, str::to_owned)
}

/// A v4 UUID from the thread-local generator: `Uuid::new_v4` asks the
/// kernel (a `getrandom` syscall) on every request, which `cargo xtask
/// bench` showed on the `/users/me` hot path. An id only correlates logs;
/// the thread-local CSPRNG is more than enough.
fn fresh_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Per request: a request id (echoed in `X-Request-Id` and on every log
/// line of the request), metrics by route template, and one log line with
/// method, route, status and latency. Never the query string or a header
/// value that could hold a secret.
pub async fn observe_request<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let route = routes::template(req.uri().path());
    let span = tracing::info_span!("request", request_id = %id, %method, route);
    let mut req = req;
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next
        .call(req)
        .instrument(span.clone())
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(|err| err.into_response());
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    crate::metrics::record_request(route, status, elapsed);
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, value);
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::fresh_request_id;

    #[test]
    fn fresh_request_ids_are_distinct_v4_uuids() {
        let a = uuid::Uuid::parse_str(&fresh_request_id()).unwrap();
        let b = uuid::Uuid::parse_str(&fresh_request_id()).unwrap();
        assert_eq!(a.get_version_num(), 4);
        assert_ne!(a, b);
    }
}
