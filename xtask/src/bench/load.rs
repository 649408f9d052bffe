//! A closed-loop HTTP/1.1 load generator: N connections, each sending its
//! next request as soon as the previous answer is in, for a fixed time.
//! Latencies go into an HDR histogram (microseconds).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What each connection of a run keeps sending.
#[derive(Debug, Clone)]
pub enum Scenario {
    /// `GET /healthz`: the HTTP stack alone.
    Healthz,
    /// `GET /users/me`, round-robin over many users' tokens.
    Me { tokens: Arc<Vec<String>> },
    /// `POST /token` password grants, round-robin over users.
    Login { usernames: Arc<Vec<String>> },
    /// `POST /token` refresh grants: each connection follows its own chain.
    Refresh { seeds: Arc<Vec<String>> },
    /// `POST /users` with fresh names.
    Register { prefix: String },
    /// `GET /admin/v1/users?limit=100&cursor=...`: pages of the account
    /// list, spread over the whole list.
    AdminUsers {
        token: String,
        paths: Arc<Vec<String>>,
    },
    /// `GET /sign-in?request=...`: renders the hosted sign-in page for a
    /// pending request (the browser already holds its CSRF cookie).
    SignInPage {
        paths: Arc<Vec<String>>,
        cookie: String,
    },
    /// `GET /authorize` from a signed-in browser of a first-party client:
    /// straight back with a code. Each connection keeps the codes it gets
    /// and stops at `quota`.
    Authorize {
        path: String,
        cookies: Arc<Vec<String>>,
        minted: Arc<Vec<std::sync::Mutex<Vec<String>>>>,
        quota: usize,
    },
    /// `POST /token` authorization-code grants: each connection redeems
    /// codes from its own pre-minted share and stops when it runs out.
    Redeem {
        codes: Arc<Vec<std::sync::Mutex<Vec<String>>>>,
        /// The rest of the form: redirect_uri, code_verifier, client credentials.
        form_tail: String,
    },
}

pub const PASSWORD: &str = "bench horse battery staple";

impl Scenario {
    fn expected(&self) -> StatusCode {
        match self {
            Scenario::Register { .. } => StatusCode::CREATED,
            Scenario::Authorize { .. } => StatusCode::FOUND,
            _ => StatusCode::OK,
        }
    }

    fn request(&self, worker: usize, n: u64, chain: &str) -> Request<Full<Bytes>> {
        let form = |body: String| {
            Request::builder()
                .method(Method::POST)
                .uri("/token")
                .header("host", "bench")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
        };
        let built = match self {
            Scenario::Healthz => Request::get("/healthz")
                .header("host", "bench")
                .body(Full::default()),
            Scenario::AdminUsers { token, paths } => {
                // A stride coprime with most list lengths: every page, in no order.
                let path = &paths[(worker * 131 + n as usize * 977) % paths.len()];
                Request::get(path.as_str())
                    .header("host", "bench")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::default())
            }
            Scenario::Me { tokens } => {
                let token = &tokens[(worker + n as usize * 7) % tokens.len()];
                Request::get("/users/me")
                    .header("host", "bench")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::default())
            }
            Scenario::Login { usernames } => {
                let user = &usernames[(worker + n as usize) % usernames.len()];
                form(format!(
                    "grant_type=password&username={user}&password={}",
                    PASSWORD.replace(' ', "+")
                ))
            }
            Scenario::Refresh { .. } => form(format!("grant_type=refresh_token&refresh_token={chain}")),
            Scenario::Redeem { form_tail, .. } => form(format!(
                "grant_type=authorization_code&code={chain}&{form_tail}"
            )),
            Scenario::Authorize { path, cookies, .. } => Request::get(path.as_str())
                .header("host", "bench")
                .header("cookie", cookies[worker % cookies.len()].as_str())
                .body(Full::default()),
            Scenario::SignInPage { paths, cookie } => Request::get(paths[worker % paths.len()].as_str())
                .header("host", "bench")
                .header("cookie", cookie.as_str())
                .body(Full::default()),
            Scenario::Register { prefix } => Request::post("/users")
                .header("host", "bench")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!(
                    r#"{{"username":"{prefix}{worker}x{n}","email":"{prefix}{worker}x{n}@bench.test","password":"{PASSWORD}"}}"#
                )))),
        };
        // The builders above cannot fail (static, valid parts).
        built.unwrap_or_default()
    }
}

/// Latencies above two minutes are recorded as two minutes.
const MAX_MICROS: u64 = 120_000_000;

fn latency_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_MICROS, 3)?)
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Sample {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub micros: Histogram<u64>,
}

impl Sample {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn ms(&self, quantile: f64) -> f64 {
        self.micros.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Adds another run of the same scenario: counts, time and latencies.
    pub fn merge(&mut self, other: &Sample) -> Result<()> {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.micros.add(&other.micros)?;
        Ok(())
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Runs `scenario` on `connections` connections for `duration`.
pub async fn run(
    addr: SocketAddr,
    scenario: Scenario,
    connections: usize,
    duration: Duration,
) -> Result<Sample> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let scenario = scenario.clone();
            tokio::spawn(async move { drive(addr, scenario, worker, deadline).await })
        })
        .collect();
    let mut total = Sample {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        micros: latency_histogram()?,
    };
    for worker in workers {
        let sample = worker.await.context("load worker panicked")??;
        total.ok += sample.ok;
        total.errors += sample.errors;
        total.micros.add(&sample.micros)?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn drive(
    addr: SocketAddr,
    scenario: Scenario,
    worker: usize,
    deadline: Instant,
) -> Result<Sample> {
    let mut sample = Sample {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        micros: latency_histogram()?,
    };
    let mut chain = match &scenario {
        Scenario::Refresh { seeds } => seeds[worker % seeds.len()].clone(),
        _ => String::new(),
    };
    let mut sender = connect(addr).await?;
    let mut n = 0u64;
    while Instant::now() < deadline {
        if let Scenario::Authorize { minted, quota, .. } = &scenario {
            let have = minted[worker % minted.len()].lock().map_or(0, |m| m.len());
            if have >= *quota {
                break;
            }
        }
        if let Scenario::Redeem { codes, .. } = &scenario {
            // A worker that has redeemed its share is done (the run's
            // elapsed time then ends with the last worker).
            let next = codes[worker % codes.len()]
                .lock()
                .ok()
                .and_then(|mut share| share.pop());
            match next {
                Some(code) => chain = code,
                None => break,
            }
        }
        let request = scenario.request(worker, n, &chain);
        n += 1;
        let sent = Instant::now();
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => {
                sample.errors += 1;
                sender = connect(addr).await?;
                continue;
            }
        };
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        let micros = (sent.elapsed().as_micros() as u64).clamp(1, MAX_MICROS);
        sample.micros.record(micros)?;
        if status != scenario.expected() {
            sample.errors += 1;
            continue;
        }
        sample.ok += 1;
        if let (Scenario::Authorize { minted, .. }, Some(location)) = (&scenario, &location) {
            if let Some(code) = code_in(location) {
                if let Ok(mut share) = minted[worker % minted.len()].lock() {
                    share.push(code);
                }
            }
        }
        if matches!(scenario, Scenario::Refresh { .. }) {
            let reply: serde_json::Value = serde_json::from_slice(&body)?;
            if let Some(next) = reply["refresh_token"].as_str() {
                chain = next.to_owned();
            }
        }
    }
    Ok(sample)
}

/// An answer outside a load run: status, headers, body text.
pub struct Raw {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub text: String,
}

impl Raw {
    /// The `Location` header, or "".
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// `name=value` of the first `Set-Cookie` for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default())
            .find(|pair| pair.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// One request with headers (the browser flow's seeding).
pub async fn call_raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Result<Raw> {
    let mut sender = connect(addr).await?;
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(Raw {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// One request outside a load run (seeding): status and body.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: &str,
    body: String,
) -> Result<(StatusCode, serde_json::Value)> {
    let mut sender = connect(addr).await?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench")
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
}

/// `POST /token` with `form` outside a load run: status and body.
pub async fn token(addr: SocketAddr, form: String) -> Result<(StatusCode, serde_json::Value)> {
    call(
        addr,
        Method::POST,
        "/token",
        "application/x-www-form-urlencoded",
        form,
    )
    .await
}

/// The `code` parameter of a redirect back to the client.
pub fn code_in(location: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("code="))
        .map(str::to_owned)
}
