//! The audit log: append-only, queried by time, actor, action and target
//! with a cursor, trimmed only by retention.

use auth_core::store::Store;
use auth_core::{AuditEvent, AuditQuery};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::sessions::now;
use crate::users::new_user;

fn event(actor: &str, action: &str, target: Option<&str>, time: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        time,
        actor: actor.into(),
        action: action.into(),
        target: target.map(str::to_owned),
        outcome: "success".into(),
        client_address: Some("203.0.113.7".into()),
        request_id: Some(Uuid::new_v4().to_string()),
    }
}

fn all(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

pub async fn audit_records_read_back_oldest_first_and_filter<S: Store>(store: &S) {
    let start = now();
    let written = [
        event("user:a", "sign_in", Some("user:a"), start),
        event(
            "anonymous",
            "sign_in",
            Some("login:bob"),
            start + Duration::seconds(1),
        ),
        event(
            "operator",
            "user.disabled",
            Some("user:a"),
            start + Duration::seconds(2),
        ),
        event(
            "client:ops",
            "client.created",
            Some("client:web"),
            start + Duration::seconds(3),
        ),
    ];
    for record in &written {
        store.append_audit(record).await.expect("append");
    }
    assert_eq!(
        store.query_audit(&all(100)).await.expect("query"),
        written.to_vec()
    );
    let by = |query: AuditQuery| async move {
        store
            .query_audit(&AuditQuery {
                limit: 100,
                ..query
            })
            .await
            .expect("query")
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let ids = |indexes: &[usize]| indexes.iter().map(|i| written[*i].id).collect::<Vec<_>>();
    assert_eq!(
        by(AuditQuery {
            action: Some("sign_in".into()),
            ..Default::default()
        })
        .await,
        ids(&[0, 1])
    );
    assert_eq!(
        by(AuditQuery {
            actor: Some("operator".into()),
            ..Default::default()
        })
        .await,
        ids(&[2])
    );
    assert_eq!(
        by(AuditQuery {
            target: Some("user:a".into()),
            ..Default::default()
        })
        .await,
        ids(&[0, 2])
    );
    assert_eq!(
        by(AuditQuery {
            since: Some(start + Duration::seconds(1)),
            until: Some(start + Duration::seconds(3)),
            ..Default::default()
        })
        .await,
        ids(&[1, 2]),
        "since is inclusive, until exclusive"
    );
    assert_eq!(
        by(AuditQuery {
            action: Some("sign_in".into()),
            target: Some("user:a".into()),
            ..Default::default()
        })
        .await,
        ids(&[0])
    );
    assert_eq!(
        by(AuditQuery {
            actor: Some("nobody".into()),
            ..Default::default()
        })
        .await,
        ids(&[])
    );
    assert_eq!(
        store.query_audit(&all(2)).await.expect("query").len(),
        2,
        "limit"
    );
}

pub async fn concurrent_appends_lose_no_record<S: Store>(store: &S) {
    let records: Vec<_> = (0..50)
        .map(|i| event(&format!("user:{i}"), "sign_in", None, now()))
        .collect();
    let appends = records.iter().map(|r| store.append_audit(r));
    for outcome in futures::future::join_all(appends).await {
        outcome.expect("append");
    }
    let stored = store.query_audit(&all(1000)).await.expect("query");
    assert_eq!(stored.len(), 50, "every record kept");
    let mut sorted = stored.clone();
    sorted.sort_by_key(|e| e.id);
    assert_eq!(stored, sorted, "oldest first");
}

pub async fn cursor_pages_stay_stable_while_records_are_appended<S: Store>(store: &S) {
    for i in 0..5 {
        store
            .append_audit(&event("user:a", &format!("step.{i}"), None, now()))
            .await
            .expect("append");
    }
    let first = store.query_audit(&all(3)).await.expect("page 1");
    assert_eq!(first.len(), 3);
    // Appended between the two pages: they come after, never in between.
    for i in 5..8 {
        store
            .append_audit(&event("user:a", &format!("step.{i}"), None, now()))
            .await
            .expect("append");
    }
    let cursor = first.last().map(|e| e.id);
    let second = store
        .query_audit(&AuditQuery {
            after: cursor,
            limit: 3,
            ..AuditQuery::default()
        })
        .await
        .expect("page 2");
    let third = store
        .query_audit(&AuditQuery {
            after: second.last().map(|e| e.id),
            limit: 3,
            ..AuditQuery::default()
        })
        .await
        .expect("page 3");
    let actions: Vec<String> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|e| e.action.clone())
        .collect();
    let expected: Vec<String> = (0..8).map(|i| format!("step.{i}")).collect();
    assert_eq!(actions, expected, "no record skipped or repeated");
    let past_the_end = store
        .query_audit(&AuditQuery {
            after: third.last().map(|e| e.id),
            limit: 3,
            ..AuditQuery::default()
        })
        .await
        .expect("page 4");
    assert!(past_the_end.is_empty());
}

pub async fn retention_removes_only_older_records_and_deleting_a_user_none<S: Store>(store: &S) {
    let user = new_user("ada", "ada@example.org");
    store.insert_user(&user).await.expect("user");
    let target = format!("user:{}", user.id);
    let old = event(
        "operator",
        "user.created",
        Some(&target),
        now() - Duration::days(400),
    );
    let recent = event(
        "operator",
        "user.deleted",
        Some(&target),
        now() - Duration::days(1),
    );
    store.append_audit(&old).await.expect("append");
    store.append_audit(&recent).await.expect("append");
    assert!(store.delete_user(user.id).await.expect("delete"));
    assert_eq!(
        store.query_audit(&all(10)).await.expect("query").len(),
        2,
        "history outlives the account"
    );
    assert_eq!(
        store
            .purge_audit(now() - Duration::days(365))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(
        store.query_audit(&all(10)).await.expect("query"),
        vec![recent]
    );
}
