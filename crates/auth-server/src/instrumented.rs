//! Store calls timed into `tessera_store_call_duration_seconds`: the
//! observer half of [`auth_core::Observed`], which wraps every port method
//! of any backend (declared once, in `auth_core::store`).

use std::time::Duration;

use auth_core::{Observed, StoreObserver};

use crate::metrics::record_store_call;

/// Records each store call as a Prometheus histogram sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreMetrics;

impl StoreObserver for StoreMetrics {
    fn store_call(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        record_store_call(operation, elapsed, ok);
    }
}

/// `S` with its calls timed.
pub type Instrumented<S> = Observed<S, StoreMetrics>;

/// Wraps `store` so its calls are timed.
pub fn instrument<S>(store: S) -> Instrumented<S> {
    Observed::new(store, StoreMetrics)
}
