//! RFC 6238 (HMAC-SHA1, 6 digits, 30 s), written here so the server's codes
//! are checked against an implementation that is not the server's. Shared by
//! the in-process and the end-to-end tests (`#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

/// The code for `unix_time` of a base32 secret.
pub fn code(secret_base32: &str, unix_time: i64) -> String {
    let secret = base32_decode(secret_base32);
    let counter = (unix_time / 30) as u64;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret);
    let mac = ring::hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[19] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", binary % 1_000_000)
}

/// The code of now plus `ahead` seconds.
pub fn code_at(secret_base32: &str, ahead: i64) -> String {
    code(secret_base32, chrono::Utc::now().timestamp() + ahead)
}

fn base32_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let value = alphabet.iter().position(|a| *a == c).expect("base32") as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// The secret a setup page shows (`data-secret`).
pub fn secret_on_page(html: &str) -> String {
    let start = html
        .find("data-secret>")
        .expect("the setup page shows the secret")
        + 12;
    html[start..].split('<').next().unwrap().to_owned()
}

#[test]
fn matches_the_rfc_6238_test_vector() {
    // RFC 6238 Appendix B, SHA-1, T = 59: 94287082 (8 digits).
    assert_eq!(code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59), "287082");
}
