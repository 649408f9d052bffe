//! Health and readiness probes.

use std::sync::Arc;

use auth_core::Store;
use poem::http::StatusCode;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{Object, OpenApi, Tags};

use super::problem::ProblemResponse;
use super::AppState;

#[derive(Tags)]
enum OpsTag {
    /// Probes for orchestrators and load balancers.
    Operations,
}

#[derive(Debug, Object)]
pub struct Status {
    pub status: String,
}

pub struct OpsApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> OpsApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(tag = "OpsTag::Operations")]
impl<S: Store> OpsApi<S> {
    /// Liveness: 200 while the process serves.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> Json<Status> {
        Json(Status {
            status: "ok".into(),
        })
    }

    /// Prometheus metrics (text exposition format).
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self) -> PlainText<String> {
        // Gauges read at scrape time, so they are never stale.
        metrics::gauge!("tessera_password_hash_queue_depth")
            .set(self.state.service.hasher().queue_depth() as f64);
        PlainText(crate::metrics::handle().render())
    }

    /// Readiness: 200 when the store answers, 503 when it does not.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> Result<Json<Status>, ProblemResponse> {
        match self.state.service.store().ping().await {
            Ok(()) => Ok(Json(Status {
                status: "ready".into(),
            })),
            Err(err) => {
                tracing::warn!(error = %err, "readiness check failed");
                Err(ProblemResponse::from_status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store is not answering",
                ))
            }
        }
    }
}
