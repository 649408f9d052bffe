//! What the service tests build their `AuthService` from.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use auth_core::token::{TokenConfig, TokenIssuer, TokenKeys};
use auth_core::{HashingConfig, PasswordHasher};

/// Argon2 as cheap as it goes: tests hash often.
pub fn cheap_hasher() -> PasswordHasher {
    PasswordHasher::new(&HashingConfig {
        memory_kib: 1024,
        iterations: 1,
        ..HashingConfig::default()
    })
    .unwrap()
}

/// HS256 access tokens for `issuer`.
pub fn tokens(issuer: &str) -> TokenIssuer {
    TokenIssuer::new(
        TokenKeys::hs256(b"service-test-secret-service-test-secret"),
        TokenConfig {
            issuer: issuer.into(),
            audience: None,
            access_ttl: Duration::from_secs(900),
            leeway: Duration::from_secs(5),
            client_id: "tessera".into(),
        },
    )
}
