//! Asymmetric signing keys: tokens verify with the published JWKS, and keys rotate.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_verify_with_the_published_jwks_and_keys_rotate() {
    use jsonwebtoken::jwk::JwkSet;
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let out = keys_dir.display().to_string();
    run_ok(
        &[],
        &[
            "keys", "generate", "--alg", "EdDSA", "--out", &out, "--kid", "k1",
        ],
    );
    let mut env = sqlite_env(dir.path());
    env.push(("TESSERA_TOKENS__ALGORITHM", "EdDSA".into()));
    env.push(("TESSERA_TOKENS__KEYS_DIR", out.clone()));

    let server = Server::start(&env);
    assert_eq!(server.register("signer").await, StatusCode::CREATED);
    let old_token = server.token("signer").await;
    let jwks: JwkSet = server.get_json("/.well-known/jwks.json").await;
    // Verify as a third-party service would: only the JWKS, a JWT library.
    let header = jsonwebtoken::decode_header(&old_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some("k1"));
    let jwk = jwks.find("k1").expect("k1 published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["http://127.0.0.1:8080"]);
    let verified = jsonwebtoken::decode::<Value>(
        &old_token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("verifies with the JWKS alone");
    assert_eq!(verified.claims["preferred_username"], "signer");
    server.stop();

    // Rotation: add k2, make it active; k1 stays for verification.
    run_ok(
        &[],
        &[
            "keys", "generate", "--alg", "EdDSA", "--out", &out, "--kid", "k2",
        ],
    );
    env.push(("TESSERA_TOKENS__ACTIVE_KID", "k2".into()));
    let listed = run_ok(&env, &["keys", "list"]);
    assert!(listed.contains("k1\tEdDSA\tverify-only"), "{listed}");
    assert!(listed.contains("k2\tEdDSA\tsigning"), "{listed}");
    let rotated = Server::start(&env);
    assert_eq!(
        rotated.me(&old_token).await,
        StatusCode::OK,
        "old tokens stay valid"
    );
    let new_token = rotated.token("signer").await;
    let kid = jsonwebtoken::decode_header(&new_token).unwrap().kid;
    assert_eq!(kid.as_deref(), Some("k2"));
    let jwks: Value = rotated.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    // The access-token keys, then the ID-token keys (the harness's folder).
    assert_eq!(kids[..2], ["k2", "k1"]);
    assert!(kids.contains(&"rs256-e2e"), "{kids:?}");
    rotated.stop();
}
