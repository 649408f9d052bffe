//! The browser-flow scenarios of the bench: a first-party client, browsers
//! signed in once (the only hashes), then `/authorize` minting codes, the
//! token endpoint redeeming them, and the sign-in page rendering.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use hyper::{Method, StatusCode};

use super::load::{self, call_raw, code_in, Sample, Scenario, PASSWORD};

pub const CLIENT_ID: &str = "bench-app";
const CLIENT_SECRET: &str = "bench-client-secret-bench-client-secret";
const REDIRECT_URI: &str = "https://bench.example/callback";
/// RFC 7636 Appendix B's pair.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The configuration file giving the server the bench's client.
pub fn client_config() -> String {
    format!(
        "[[clients]]\nid = \"{CLIENT_ID}\"\nname = \"Bench\"\nsecret = \"{CLIENT_SECRET}\"\n\
         redirect_uris = [\"{REDIRECT_URI}\"]\nscopes = [\"openid\", \"profile\"]\nfirst_party = true\n"
    )
}

/// What the codes are for: `openid` makes the token response carry an ID
/// token (signed once per redemption); `profile` alone does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    OpenId,
    NoIdToken,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::OpenId => "openid",
            Scope::NoIdToken => "profile",
        }
    }
}

fn authorize_path(scope: Scope) -> String {
    format!(
        "/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri={}&scope={}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=bench",
        REDIRECT_URI.replace(':', "%3A").replace('/', "%2F"),
        scope.as_str()
    )
}

/// `GET /authorize` from a browser without a session: the redirect to the
/// sign-in page of a new pending request.
async fn start_authorization(addr: SocketAddr, scope: Scope) -> Result<load::Raw> {
    let start = call_raw(
        addr,
        Method::GET,
        &authorize_path(scope),
        &[],
        String::new(),
    )
    .await?;
    if start.status != StatusCode::SEE_OTHER {
        bail!(
            "GET /authorize answered {} (no code flow in this build?)",
            start.status
        );
    }
    Ok(start)
}

/// Signed-in browsers, and pending requests with a CSRF cookie for the page.
pub struct Prepared {
    scope: Scope,
    sessions: Arc<Vec<String>>,
    page_paths: Arc<Vec<String>>,
    csrf_cookie: String,
}

/// Signs `usernames` in through the pages (one hash each) and leaves one
/// pending sign-in request per connection.
pub async fn prepare(
    addr: SocketAddr,
    usernames: &[String],
    connections: usize,
    scope: Scope,
) -> Result<Prepared> {
    let mut sessions = Vec::new();
    let mut csrf_cookie = String::new();
    for username in usernames {
        let start = start_authorization(addr, scope).await?;
        let page = call_raw(addr, Method::GET, start.location(), &[], String::new()).await?;
        let csrf = page.cookie("tessera_csrf").context("no CSRF cookie")?;
        let field = |name: &str| {
            let marker = format!(r#"name="{name}" value=""#);
            page.text
                .split_once(&marker)
                .and_then(|(_, rest)| rest.split('"').next())
                .map(str::to_owned)
                .with_context(|| format!("no {name} on the sign-in page"))
        };
        let form = format!(
            "csrf_token={}&request={}&username={username}&password={}",
            field("csrf_token")?,
            field("request")?,
            PASSWORD.replace(' ', "+")
        );
        let signed_in = call_raw(
            addr,
            Method::POST,
            "/sign-in",
            &[
                ("cookie", csrf.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form,
        )
        .await?;
        if code_in(signed_in.location()).is_none() {
            bail!(
                "signing {username} in: {} {}",
                signed_in.status,
                signed_in.location()
            );
        }
        sessions.push(
            signed_in
                .cookie("tessera_session")
                .context("no session cookie")?,
        );
        csrf_cookie = csrf;
    }
    let mut page_paths = Vec::new();
    for _ in 0..connections {
        let start = start_authorization(addr, scope).await?;
        page_paths.push(start.location().to_owned());
    }
    Ok(Prepared {
        scope,
        sessions: Arc::new(sessions),
        page_paths: Arc::new(page_paths),
        csrf_cookie,
    })
}

/// `GET /authorize` for signed-in browsers until `count` codes exist.
pub async fn mint(
    addr: SocketAddr,
    prepared: &Prepared,
    count: usize,
    connections: usize,
) -> Result<(Sample, Arc<Vec<Mutex<Vec<String>>>>)> {
    let minted: Arc<Vec<Mutex<Vec<String>>>> =
        Arc::new((0..connections).map(|_| Mutex::new(Vec::new())).collect());
    let scenario = Scenario::Authorize {
        path: authorize_path(prepared.scope),
        cookies: Arc::clone(&prepared.sessions),
        minted: Arc::clone(&minted),
        quota: count.div_ceil(connections),
    };
    // The quota ends the run; the duration is only a bound.
    let sample = load::run(
        addr,
        scenario,
        connections,
        std::time::Duration::from_secs(600),
    )
    .await?;
    Ok((sample, minted))
}

/// Redeeming the minted codes.
pub fn redeem(codes: Arc<Vec<Mutex<Vec<String>>>>) -> Scenario {
    Scenario::Redeem {
        codes,
        form_tail: format!(
            "redirect_uri={}&code_verifier={VERIFIER}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}",
            REDIRECT_URI.replace(':', "%3A").replace('/', "%2F")
        ),
    }
}

/// Rendering the sign-in page of a pending request.
pub fn sign_in_page(prepared: &Prepared) -> Scenario {
    Scenario::SignInPage {
        paths: Arc::clone(&prepared.page_paths),
        cookie: prepared.csrf_cookie.clone(),
    }
}
