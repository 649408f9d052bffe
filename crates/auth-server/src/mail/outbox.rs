//! The sender loop: every replica works the outbox in the store, so mail
//! keeps flowing whichever replicas are up, and claims (see
//! `MailStore::claim_mail`) keep two replicas from sending one message.

use std::sync::Arc;
use std::time::Duration;

use auth_core::mail::deliver_due;
use auth_core::{DeliveryPolicy, Store};

use super::Sender;
use crate::api::AppState;
use crate::metrics;

/// Sends due messages every `every` (at once again after a full batch)
/// until the task is aborted.
pub async fn send_periodically<S: Store>(
    state: Arc<AppState<S>>,
    sender: Arc<Sender>,
    policy: DeliveryPolicy,
    every: Duration,
) {
    loop {
        let full = match deliver_due(state.service.store(), &*sender, &policy).await {
            Ok(report) => {
                metrics::record_mail(&report);
                report.claimed() >= policy.batch
            }
            Err(e) => {
                tracing::warn!(error = %e, "working the mail outbox failed");
                false
            }
        };
        if !full {
            tokio::time::sleep(every).await;
        }
    }
}
