//! A cookie-keeping browser for the in-process page tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use poem::http::{Method, StatusCode};
use poem::Request;
use sha2::{Digest, Sha256};

use super::{encode, Reply, TestApp, PASSWORD};

/// The S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A browser: keeps cookies between requests, never follows redirects.
pub struct Browser<'a> {
    app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    pub async fn send(&mut self, req: poem::RequestBuilder, body: Option<String>) -> Reply {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        let req = match body {
            Some(body) => req
                .content_type("application/x-www-form-urlencoded")
                .body(body),
            None => req.finish(),
        };
        let reply = self.app.send(req).await;
        for set in reply.headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        reply
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::builder().method(Method::GET).uri_str(path), None)
            .await
    }

    pub async fn post(&mut self, path: &str, form: &str) -> Reply {
        self.send(
            Request::builder().method(Method::POST).uri_str(path),
            Some(form.to_owned()),
        )
        .await
    }

    /// GET `path` (a page), then submit its form with `fields`.
    pub async fn submit(&mut self, path: &str, fields: &str) -> Reply {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        let csrf = hidden(&page.text, "csrf_token");
        let request = hidden(&page.text, "request");
        let action = path.split('?').next().unwrap();
        self.post(
            action,
            &format!("csrf_token={csrf}&request={request}&{fields}"),
        )
        .await
    }

    /// Signs in from the page `/authorize` sent us to.
    pub async fn sign_in(&mut self, page: &str, username: &str) -> Reply {
        self.submit(
            page,
            &format!(
                "username={}&password={}",
                encode(username),
                encode(PASSWORD)
            ),
        )
        .await
    }
}

pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    // As a browser reads the attribute: minijinja escapes `/`, `&`, quotes.
    html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn location(reply: &Reply) -> String {
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {} {}", reply.status, reply.text))
        .to_owned()
}

/// The query parameters of a redirect back to the client.
pub fn params_of(url: &str) -> BTreeMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}
