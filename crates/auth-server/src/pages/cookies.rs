//! The two cookies of the pages, and CSRF protection.
//!
//! * `tessera_session` names the browser's sign-in session in the store
//!   (a random token; the store keeps its digest).
//! * `tessera_csrf` is a random value this browser holds; every form
//!   carries `csrf_token = base64url(SHA-256("tessera-csrf:" || value))`,
//!   and a POST whose field does not match its cookie is refused (403,
//!   nothing changed). Another site can make the browser send the cookie but
//!   cannot read it, so it cannot produce the field.
//!
//! * `tessera_mfa` names a sign-in whose password was right and whose
//!   second factor is still due (five minutes at most).
//!
//! When `server.public_url` is https both are `__Host-` prefixed and
//! `Secure` (the prefix also stops a sibling subdomain from planting a
//! cookie); always `HttpOnly`, `SameSite=Lax`, `Path=/`.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use poem::http::header;
use poem::Request;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const SESSION: &str = "tessera_session";
const CSRF: &str = "tessera_csrf";
const SECOND_FACTOR: &str = "tessera_mfa";
const CSRF_CONTEXT: &[u8] = b"tessera-csrf:";

/// Cookie names and attributes for this deployment.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    secure: bool,
    session_lifetime: Duration,
}

impl CookiePolicy {
    pub fn new(public_url: &str, session_lifetime: Duration) -> Self {
        Self {
            secure: public_url.starts_with("https://"),
            session_lifetime,
        }
    }

    fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    fn set_cookie(&self, base: &str, value: &str, max_age: Option<u64>) -> String {
        let mut cookie = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            self.name(base)
        );
        if self.secure {
            cookie.push_str("; Secure");
        }
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        cookie
    }

    /// The sign-in session cookie's value, if the browser sent one.
    pub fn session<'a>(&self, req: &'a Request) -> Option<&'a str> {
        cookie(req, &self.name(SESSION))
    }

    /// `Set-Cookie` for a new sign-in session (lives as long as the
    /// session's absolute lifetime).
    pub fn set_session(&self, value: &str) -> String {
        self.set_cookie(SESSION, value, Some(self.session_lifetime.as_secs()))
    }

    /// `Set-Cookie` that removes the sign-in session cookie (sign-out).
    pub fn clear_session(&self) -> String {
        self.set_cookie(SESSION, "", Some(0))
    }

    /// The pending second step's cookie (set after a correct password when
    /// a second factor is due), if any.
    pub fn second_factor<'a>(&self, req: &'a Request) -> Option<&'a str> {
        cookie(req, &self.name(SECOND_FACTOR))
    }

    /// `Set-Cookie` for a pending second step (lives as long as the step).
    pub fn set_second_factor(&self, value: &str) -> String {
        self.set_cookie(
            SECOND_FACTOR,
            value,
            Some(auth_core::factors::CEREMONY_TTL.as_secs()),
        )
    }

    /// `Set-Cookie` that removes the second step's cookie.
    pub fn clear_second_factor(&self) -> String {
        self.set_cookie(SECOND_FACTOR, "", Some(0))
    }

    /// The CSRF cookie's value, if any.
    pub fn csrf<'a>(&self, req: &'a Request) -> Option<&'a str> {
        cookie(req, &self.name(CSRF))
    }

    /// The CSRF secret for a page: the browser's, or a new one with the
    /// `Set-Cookie` that gives it to the browser.
    pub fn csrf_for_page(&self, req: &Request) -> (String, Option<String>) {
        match self.csrf(req) {
            Some(value) if value.len() >= 32 => (value.to_owned(), None),
            _ => {
                let value = auth_core::refresh::OpaqueToken::generate()
                    .expose()
                    .to_owned();
                let set = self.set_cookie(CSRF, &value, None);
                (value, Some(set))
            }
        }
    }

    /// Whether a form's `csrf_token` belongs to this browser's cookie.
    pub fn csrf_matches(&self, req: &Request, field: Option<&str>) -> bool {
        match (self.csrf(req), field) {
            (Some(cookie), Some(field)) => {
                bool::from(csrf_token(cookie).as_bytes().ct_eq(field.as_bytes()))
            }
            _ => false,
        }
    }
}

/// The form field value for a CSRF cookie value.
pub fn csrf_token(cookie_value: &str) -> String {
    let digest = Sha256::new()
        .chain_update(CSRF_CONTEXT)
        .chain_update(cookie_value.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// The value of cookie `name` (RFC 6265 §5.4 `Cookie` header).
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cookie: &str) -> Request {
        Request::builder().header(header::COOKIE, cookie).finish()
    }

    #[test]
    fn https_deployments_get_host_prefixed_secure_cookies() {
        let https = CookiePolicy::new("https://id.example", Duration::from_secs(60));
        assert_eq!(
            https.set_session("v"),
            "__Host-tessera_session=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
        );
        let http = CookiePolicy::new("http://127.0.0.1:8080", Duration::from_secs(60));
        assert_eq!(
            http.set_session("v"),
            "tessera_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        let req = request("a=1; __Host-tessera_session=abc; tessera_session=plain");
        assert_eq!(https.session(&req), Some("abc"));
        assert_eq!(http.session(&req), Some("plain"));
    }

    #[test]
    fn csrf_fields_must_match_the_browsers_cookie() {
        let policy = CookiePolicy::new("http://127.0.0.1", Duration::from_secs(60));
        let secret = "x".repeat(43);
        let req = request(&format!("tessera_csrf={secret}"));
        assert!(policy.csrf_matches(&req, Some(&csrf_token(&secret))));
        assert!(!policy.csrf_matches(&req, Some(&csrf_token("other"))));
        assert!(!policy.csrf_matches(&req, None));
        assert!(!policy.csrf_matches(&request(""), Some(&csrf_token(&secret))));
        let (kept, set) = policy.csrf_for_page(&req);
        assert_eq!((kept, set), (secret, None));
        let (fresh, set) = policy.csrf_for_page(&request(""));
        assert_eq!(fresh.len(), 43);
        assert!(set.is_some_and(|s| s.starts_with("tessera_csrf=")));
    }
}
