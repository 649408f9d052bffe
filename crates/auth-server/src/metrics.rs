//! Prometheus metrics: the `metrics` facade everywhere, one exporter here.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds): sub-millisecond requests up to slow logins.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use. (One per process:
/// in-process tests share it, so they assert on increments.)
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is already global (embedding): keep ours local.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

pub fn record_request(route: &'static str, status: u16, elapsed: Duration) {
    metrics::counter!("http_requests_total", "route" => route, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route).record(elapsed);
}

/// `outcome`: `success`, `invalid_credentials`, `disabled`, `throttled`,
/// `overloaded`, `error`.
pub fn record_login(outcome: &'static str) {
    metrics::counter!("tessera_logins_total", "outcome" => outcome).increment(1);
}

pub fn record_refresh(outcome: &'static str) {
    metrics::counter!("tessera_refreshes_total", "outcome" => outcome).increment(1);
}

pub fn record_code_redemption(outcome: &'static str) {
    metrics::counter!("tessera_code_redemptions_total", "outcome" => outcome).increment(1);
}

/// Tokens clients asked for themselves (`client_credentials`).
pub fn record_client_credentials(outcome: &'static str) {
    metrics::counter!("tessera_client_credentials_total", "outcome" => outcome).increment(1);
}

/// What happened at `/authorize` and the pages: `code`, `sign_in`,
/// `consent`, `error`, `unredirectable`.
pub fn record_authorization(outcome: &'static str) {
    metrics::counter!("tessera_authorizations_total", "outcome" => outcome).increment(1);
}

pub fn record_registration(outcome: &'static str) {
    metrics::counter!("tessera_registrations_total", "outcome" => outcome).increment(1);
}

pub fn record_revocation() {
    metrics::counter!("tessera_revocations_total").increment(1);
}

pub fn record_store_call(operation: &'static str, elapsed: Duration, ok: bool) {
    metrics::histogram!(
        "tessera_store_call_duration_seconds",
        "operation" => operation,
        "outcome" => if ok { "ok" } else { "error" }
    )
    .record(elapsed);
}

/// The login/refresh outcome label of a domain error.
pub fn outcome_of(err: &auth_core::AuthError) -> &'static str {
    use auth_core::AuthError;
    match err {
        AuthError::InvalidCredentials | AuthError::InvalidRefreshToken => "invalid_credentials",
        AuthError::InvalidGrant(_) => "invalid_grant",
        AuthError::InvalidClient { .. } => "invalid_client",
        AuthError::AccountDisabled => "disabled",
        AuthError::Throttled { .. } => "throttled",
        AuthError::EmailNotVerified => "email_not_verified",
        AuthError::InvalidCode | AuthError::PasskeyRefused(_) => "invalid_second_factor",
        AuthError::SecondFactorRequired => "second_factor_required",
        AuthError::Overloaded => "overloaded",
        AuthError::StoreUnavailable => "unavailable",
        _ => "error",
    }
}

/// One round of the mail sender: `tessera_mail_sent_total{outcome}`, with
/// `outcome` = `sent`, `retried` or `gave_up`.
pub fn record_mail(report: &auth_core::DeliveryReport) {
    for (outcome, count) in [
        ("sent", report.sent),
        ("retried", report.retried),
        ("gave_up", report.gave_up),
    ] {
        if count > 0 {
            metrics::counter!("tessera_mail_sent_total", "outcome" => outcome)
                .increment(u64::from(count));
        }
    }
}

/// `cap`: `global` or `per_address`.
pub fn record_connection_refused(cap: &'static str) {
    metrics::counter!("tessera_connections_refused_total", "cap" => cap).increment(1);
}

/// `kind`: `header`, `body` or `idle`.
pub fn record_connection_timeout(kind: &'static str) {
    metrics::counter!("tessera_connection_timeouts_total", "kind" => kind).increment(1);
}

/// Counts one open connection in `tessera_connections_open` while it lives.
#[derive(Debug)]
pub struct OpenConnection(());

impl OpenConnection {
    /// Counts a connection that was just accepted.
    pub fn opened() -> Self {
        metrics::gauge!("tessera_connections_open").increment(1.0);
        Self(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("tessera_connections_open").decrement(1.0);
    }
}
