//! Clients registered through the CLI: unique ids, round trips, updates.

use auth_core::store::{Store, StoreError, UniqueField};
use auth_core::{Client, ClientRegistration, GrantType};

use crate::sessions::now;

/// A valid client; `secret` makes it confidential.
pub fn client(id: &str, secret: Option<&str>) -> Client {
    let mut client = ClientRegistration {
        id: id.into(),
        name: Some(format!("The {id} app")),
        secret: secret.map(Into::into),
        redirect_uris: vec![
            format!("https://{id}.example/callback"),
            "http://127.0.0.1/cb".into(),
        ],
        post_logout_redirect_uris: vec![format!("https://{id}.example/")],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: vec!["openid".into(), "email".into()],
        first_party: false,
    }
    .validate()
    .expect("a valid client");
    client.created_at = now();
    client
}

pub async fn inserted_clients_read_back_whole<S: Store>(store: &S) {
    let confidential = client("billing", Some("a-secret-of-at-least-32-characters-long"));
    let public = client("mobile", None);
    store.insert_client(&confidential).await.expect("insert");
    store.insert_client(&public).await.expect("insert");
    assert_eq!(
        store.find_client("billing").await.expect("find"),
        Some(confidential.clone())
    );
    assert_eq!(
        store.find_client("mobile").await.expect("find"),
        Some(public.clone())
    );
    assert_eq!(store.find_client("nobody").await.expect("find"), None);
    assert_eq!(
        store.list_clients().await.expect("list"),
        vec![confidential, public],
        "listed in id order"
    );
}

pub async fn a_taken_client_id_conflicts<S: Store>(store: &S) {
    store
        .insert_client(&client("dup", None))
        .await
        .expect("first");
    let second = client("dup", Some("another-secret-of-at-least-32-characters"));
    match store.insert_client(&second).await {
        Err(StoreError::Conflict(UniqueField::ClientId)) => {}
        other => panic!("expected a client id conflict, got {other:?}"),
    }
    let kept = store.find_client("dup").await.expect("find");
    assert_eq!(
        kept.map(|c| c.is_public()),
        Some(true),
        "the first one stays"
    );
}

pub async fn updating_a_client_replaces_all_but_its_creation_time<S: Store>(store: &S) {
    let original = client("editor", None);
    store.insert_client(&original).await.expect("insert");
    let mut changed = client("editor", Some("rotated-secret-of-at-least-32-characters"));
    changed.name = "Renamed".into();
    changed.redirect_uris = vec!["https://new.example/cb".into()];
    changed.first_party = true;
    changed.created_at = now() + chrono::Duration::days(1);
    store.update_client(&changed).await.expect("update");
    let stored = store.find_client("editor").await.expect("find");
    assert_eq!(
        stored,
        Some(auth_core::Client {
            created_at: original.created_at,
            ..changed
        })
    );
    assert!(matches!(
        store.update_client(&client("ghost", None)).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn deleting_a_client_forgets_it<S: Store>(store: &S) {
    store
        .insert_client(&client("gone", None))
        .await
        .expect("insert");
    assert!(store.delete_client("gone").await.expect("delete"));
    assert!(!store.delete_client("gone").await.expect("delete again"));
    assert_eq!(store.find_client("gone").await.expect("find"), None);
    store
        .insert_client(&client("gone", None))
        .await
        .expect("the id is free again");
}
