//! Per-address rate limit on the endpoints that cost an Argon2 hash or a
//! stored record (the route table marks them: `POST /token`, `POST /users`,
//! the page forms, every `/authorize`), with `governor`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Request, Response, Result};

use super::problem::{OAuthError, ProblemResponse};
use super::routes::{self, ErrorFamily, Limit, RouteSpec};
use crate::config::RateLimitConfig;

/// The limiter and who may tell us the client's address.
#[derive(Debug)]
pub struct AddressLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpAddr>,
}

impl AddressLimiter {
    pub fn new(config: &RateLimitConfig) -> Self {
        let limiter = NonZeroU32::new(config.per_minute).map(|rate| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self {
            limiter,
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    /// Forgets idle addresses (called with the periodic purge).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }

    /// The client address: the peer, or, when the peer is a trusted proxy,
    /// the rightmost `X-Forwarded-For` entry that is not one.
    pub fn client(&self, req: &Request) -> IpAddr {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .rev()
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }

    /// `Some((wait, route))` when the request must be refused.
    fn check(&self, req: &Request) -> Option<(Duration, &'static RouteSpec)> {
        let limiter = self.limiter.as_ref()?;
        let route = routes::find(req.uri().path())?;
        let counted = match route.limit {
            Limit::None => false,
            Limit::Posts => req.method() == Method::POST,
            Limit::Every => true,
        };
        if !counted {
            return None;
        }
        let not_until = limiter.check_key(&self.client(req)).err()?;
        Some((
            not_until.wait_time_from(DefaultClock::default().now()),
            route,
        ))
    }
}

/// Refuses over-limit requests with 429 and `Retry-After`, in the error
/// shape of the endpoint's family.
pub async fn limit<E: Endpoint, S: auth_core::Store>(
    next: E,
    req: Request,
    state: Arc<crate::AppState<S>>,
) -> Result<Response> {
    let Some((wait, route)) = state.rate_limiter.check(&req) else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let detail = "too many requests from this address; slow down";
    Ok(match route.errors {
        ErrorFamily::OAuth => OAuthError::too_many_requests(detail, wait).into_response(),
        ErrorFamily::Problem => ProblemResponse::too_many_requests(detail, wait).into_response(),
        ErrorFamily::Page => state
            .pages
            .too_many_requests("Too many requests came from your network.", wait),
    })
}
