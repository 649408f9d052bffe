//! Multi-step ceremonies (the second sign-in step, an app's setup, passkey
//! registration and sign-in) over the memory store: an expired one is
//! refused, and each is answered once — a replayed answer finds nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use auth_core::refresh::OpaqueToken;
use auth_core::{
    AuthError, AuthService, Ceremony, CeremonyKind, FactorKey, FactorSettings, FactorStore,
    Passkeys, Registration, SessionPolicy, Store, User,
};
use chrono::Utc;
use store_memory::MemoryStore;

fn service() -> AuthService<MemoryStore> {
    let hasher = common::cheap_hasher();
    let tokens = common::tokens("http://localhost:8080");
    AuthService::new(MemoryStore::new(), hasher, tokens, SessionPolicy::default()).with_factors(
        FactorSettings {
            key: FactorKey::from_secret(b"ceremony-test-factor-key-of-32-bytes"),
            issuer_name: "Tessera".into(),
            passkeys: Some(Passkeys::new("http://localhost:8080", "Tessera").unwrap()),
        },
    )
}

async fn register(service: &AuthService<MemoryStore>, username: &str) -> User {
    service
        .register(
            &Registration {
                username: username.into(),
                email: format!("{username}@example.org"),
                password: "correct horse battery".into(),
            },
            &[],
        )
        .await
        .unwrap()
}

/// Moves the ceremony a token names past its expiry, as if minutes passed.
async fn expire<S: Store>(store: &S, token: &str) {
    let digest = OpaqueToken::from_presented(token).digest();
    let ceremony = store
        .take_ceremony(&digest, Utc::now())
        .await
        .unwrap()
        .unwrap();
    store
        .put_ceremony(&Ceremony {
            expires_at: Utc::now() - chrono::Duration::seconds(1),
            ..ceremony
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_ceremonies_are_refused() {
    let service = service();
    let ada = register(&service, "ada").await;

    let sign_in = service.start_passkey_sign_in().await.unwrap();
    expire(service.store(), sign_in.token.expose()).await;
    let late = service
        .finish_passkey_sign_in(sign_in.token.expose(), "{}")
        .await;
    assert!(matches!(late, Err(AuthError::CeremonyExpired)), "{late:?}");

    let registration = service.start_passkey_registration(&ada).await.unwrap();
    expire(service.store(), registration.token.expose()).await;
    let late = service
        .finish_passkey_registration(&ada, registration.token.expose(), "key", "{}")
        .await;
    assert!(matches!(late, Err(AuthError::CeremonyExpired)), "{late:?}");

    let setup = service.start_totp_enrolment(&ada).await.unwrap();
    expire(service.store(), setup.token.expose()).await;
    let late = service
        .confirm_totp_enrolment(&ada, setup.token.expose(), "123456")
        .await;
    assert!(matches!(late, Err(AuthError::CeremonyExpired)), "{late:?}");

    let step = OpaqueToken::generate();
    service
        .store()
        .put_ceremony(&Ceremony {
            digest: step.digest(),
            kind: CeremonyKind::SecondFactor,
            user_id: Some(ada.id),
            data: r#"{"amr":["pwd"],"request":null}"#.into(),
            expires_at: Utc::now() - chrono::Duration::seconds(1),
        })
        .await
        .unwrap();
    assert!(service
        .second_factor_choices(step.expose())
        .await
        .unwrap()
        .is_none());
    let late = service
        .complete_second_factor(step.expose(), "123456")
        .await;
    assert!(matches!(late, Err(AuthError::CeremonyExpired)), "{late:?}");
}

#[tokio::test]
async fn a_passkey_challenge_is_answered_once() {
    let service = service();
    let ada = register(&service, "ada").await;
    let options = service.start_passkey_sign_in().await.unwrap();
    assert_eq!(
        options.options["publicKey"]["userVerification"], "required",
        "a passkey alone must verify the person: {}",
        options.options
    );
    // A forged answer is refused, and spends the challenge all the same.
    let forged = service
        .finish_passkey_sign_in(options.token.expose(), r#"{"id":"x"}"#)
        .await;
    assert!(
        matches!(forged, Err(AuthError::PasskeyRefused(_))),
        "{forged:?}"
    );
    let replay = service
        .finish_passkey_sign_in(options.token.expose(), r#"{"id":"x"}"#)
        .await;
    assert!(
        matches!(replay, Err(AuthError::CeremonyExpired)),
        "{replay:?}"
    );

    // Registration asks for a discoverable credential with user verification.
    let registration = service.start_passkey_registration(&ada).await.unwrap();
    let selection = &registration.options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{selection}");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(selection["userVerification"], "required");
    // Only its own user may answer it.
    let bob = register(&service, "bob").await;
    let stolen = service
        .finish_passkey_registration(&bob, registration.token.expose(), "key", "{}")
        .await;
    assert!(
        matches!(stolen, Err(AuthError::CeremonyExpired)),
        "{stolen:?}"
    );
    assert!(service
        .store()
        .list_factors(bob.id)
        .await
        .unwrap()
        .is_empty());
}
