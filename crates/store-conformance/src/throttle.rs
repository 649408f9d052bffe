//! Login throttling state: round trips and atomic updates.

use std::sync::Arc;

use auth_core::store::Store;
use auth_core::ThrottleState;
use chrono::Duration;

use crate::sessions::now;

fn bump(state: Option<ThrottleState>) -> ThrottleState {
    let at = now();
    let mut state = state.unwrap_or(ThrottleState {
        failures: 0,
        window_started: at,
        locked_until: None,
        lockouts: 0,
    });
    state.failures += 1;
    state
}

pub async fn throttle_state_round_trips_and_clears<S: Store>(store: &S) {
    assert!(store
        .throttle_state("user:a")
        .await
        .expect("read")
        .is_none());
    let at = now();
    let locked = ThrottleState {
        failures: 0,
        window_started: at,
        locked_until: Some(at + Duration::minutes(2)),
        lockouts: 3,
    };
    let written = store
        .update_throttle("user:a", |old| {
            assert!(old.is_none());
            locked.clone()
        })
        .await
        .expect("update");
    assert_eq!(written, locked);
    assert_eq!(
        store.throttle_state("user:a").await.expect("read"),
        Some(locked.clone())
    );
    assert!(store
        .throttle_state("user:b")
        .await
        .expect("read")
        .is_none());
    store.clear_throttle("user:a").await.expect("clear");
    assert!(store
        .throttle_state("user:a")
        .await
        .expect("read")
        .is_none());
    store
        .clear_throttle("user:never")
        .await
        .expect("clearing nothing is fine");
}

pub async fn concurrent_throttle_updates_lose_nothing<S: Store>(store: &S) {
    let store = Arc::new(store);
    let updates = 20;
    let results = futures::future::join_all((0..updates).map(|_| {
        let store = Arc::clone(&store);
        async move { store.update_throttle("email:x@y.org", bump).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let state = store
        .throttle_state("email:x@y.org")
        .await
        .expect("read")
        .expect("state");
    assert_eq!(state.failures, updates, "every failure counted");
}
