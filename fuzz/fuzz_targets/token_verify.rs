//! Any string presented as an access token: verification must answer
//! (almost always "no"), never panic, whatever the header, `kid` or `alg`.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use auth_core::keys::{generate_private_key_pem, parse_private_key_pem};
use auth_core::token::{TokenConfig, TokenIssuer, TokenKeys};
use auth_core::SigningAlgorithm;

fn issuers() -> &'static [TokenIssuer] {
    static ISSUERS: OnceLock<Vec<TokenIssuer>> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        let config = || TokenConfig {
            issuer: "http://fuzz.test".into(),
            audience: Some("api".into()),
            access_ttl: Duration::from_secs(900),
            leeway: Duration::from_secs(5),
            client_id: "tessera".into(),
        };
        let mut issuers = vec![TokenIssuer::new(
            TokenKeys::hs256(b"fuzz-secret-fuzz-secret-fuzz-secret!"),
            config(),
        )];
        for alg in [SigningAlgorithm::EdDSA, SigningAlgorithm::ES256] {
            if let Ok(pem) = generate_private_key_pem(alg) {
                if let Ok(key) = parse_private_key_pem("fuzz", &pem) {
                    issuers.push(TokenIssuer::new(TokenKeys::asymmetric(key, vec![]), config()));
                }
            }
        }
        issuers
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        for issuer in issuers() {
            let _ = issuer.verify(token);
        }
    }
});
