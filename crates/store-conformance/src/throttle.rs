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

pub async fn purge_forgets_only_stale_unlocked_throttle_state<S: Store>(store: &S) {
    let at = now();
    let state = |window_started, locked_until| ThrottleState {
        failures: 2,
        window_started,
        locked_until,
        lockouts: 1,
    };
    let old = at - Duration::hours(3);
    let cases = [
        ("stale", state(old, None)),
        (
            "stale-lock-over",
            state(old, Some(at - Duration::minutes(1))),
        ),
        (
            "stale-but-locked",
            state(old, Some(at + Duration::minutes(5))),
        ),
        ("recent", state(at - Duration::minutes(1), None)),
    ];
    for (key, value) in &cases {
        store
            .update_throttle(key, |_| value.clone())
            .await
            .expect("write");
    }
    let purged = store
        .purge_throttle(at - Duration::hours(2), at)
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    for (key, kept) in [
        ("stale", false),
        ("stale-lock-over", false),
        ("stale-but-locked", true),
        ("recent", true),
    ] {
        assert_eq!(
            store.throttle_state(key).await.expect("read").is_some(),
            kept,
            "{key}"
        );
    }
}
