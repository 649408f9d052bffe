//! `cargo xtask bench`: the release server on each backend, driven by an
//! in-process load generator, every scenario side by side in one run so the
//! ratios (not the absolute numbers, which drift on shared machines) carry
//! the claims.

mod admin;
mod flow;
pub mod load;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use load::{Sample, Scenario, PASSWORD};
use server::Server;

/// Options of one bench run.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub backends: Vec<String>,
    pub duration: Duration,
    pub connections: usize,
    pub users: usize,
    pub admin_accounts: usize,
    pub compare: Option<PathBuf>,
    pub baseline: Option<PathBuf>,
    /// The scenarios to run (`--only`); empty: every one.
    pub only: Vec<String>,
}

impl BenchArgs {
    /// Whether any of `scenarios` is to run.
    fn runs(&self, scenarios: &[&str]) -> bool {
        self.only.is_empty() || scenarios.iter().any(|s| self.only.iter().any(|o| o == s))
    }
}

/// The scenarios run on each backend, in order.
const BACKEND_SCENARIOS: [&str; 10] = [
    "healthz",
    "users_me",
    "admin_users",
    "login",
    "refresh",
    "sign_in_page",
    "authorize",
    "code_redeem",
    "register",
    "me_in_storm",
];

/// Code redemption without an ID token and with each signing algorithm's,
/// on the memory backend, after the backends.
const SIGNING_SCENARIOS: [&str; 4] = [
    "redeem_no_id",
    "redeem_rs256",
    "redeem_es256",
    "redeem_eddsa",
];

/// Every scenario, in the order they run (`--only` names some of them).
pub fn scenarios() -> impl Iterator<Item = &'static str> {
    BACKEND_SCENARIOS.into_iter().chain(SIGNING_SCENARIOS)
}

/// `all`, one backend, or several separated by commas (`sqlite,postgres`).
pub fn backends(choice: &str) -> Vec<String> {
    if choice == "all" {
        ["memory", "sqlite", "postgres", "mongo"]
            .map(String::from)
            .to_vec()
    } else {
        choice
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(String::from)
            .collect()
    }
}

/// One scenario's figures on one backend.
#[derive(Debug, Clone)]
struct Row {
    backend: String,
    scenario: &'static str,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: u64,
    peak_rss_mib: f64,
}

impl Row {
    fn new(backend: &str, scenario: &'static str, sample: &Sample, peak_rss_mib: f64) -> Self {
        Self {
            backend: backend.to_owned(),
            scenario,
            rps: sample.rps(),
            p50: sample.ms(0.5),
            p99: sample.ms(0.99),
            p999: sample.ms(0.999),
            errors: sample.errors,
            peak_rss_mib,
        }
    }

    fn json(&self) -> Value {
        json!({
            "backend": self.backend, "scenario": self.scenario, "rps": self.rps,
            "p50_ms": self.p50, "p99_ms": self.p99, "p999_ms": self.p999,
            "errors": self.errors, "peak_rss_mib": self.peak_rss_mib,
        })
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.backends.iter().any(|b| b == "postgres") {
        crate::test::require_postgres()?;
    }
    let root = crate::process::workspace_root();
    println!("==> building the release server (all backends)");
    let status = crate::process::cargo_command()
        .args(crate::process::RELEASE_BUILD)
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let binary = root.join("target/release/tessera");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    println!("==> Argon2id cost alone (configured parameters, one thread)");
    let hashes_per_sec = argon2_hashes_per_second(Duration::from_secs(3))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("    {hashes_per_sec:.1} hashes/s per thread; {cores} CPU permits");

    let mut rows = Vec::new();
    let mut baseline_rows = Vec::new();
    let mut summaries = Vec::new();
    for backend in &args.backends {
        if let Some(baseline) = &args.baseline {
            println!("==> {backend} (baseline: {})", baseline.display());
            let (before, _) = runtime.block_on(bench_backend(baseline, backend, args, true))?;
            baseline_rows.extend(before);
        }
        println!("==> {backend}");
        let (backend_rows, idle_rss) =
            runtime.block_on(bench_backend(&binary, backend, args, false))?;
        summaries.push(summary(
            backend,
            &backend_rows,
            idle_rss,
            hashes_per_sec,
            cores,
        ));
        rows.extend(backend_rows);
    }

    let signing = if args.runs(&SIGNING_SCENARIOS) {
        println!("==> ID-token signing (memory backend, one server per algorithm)");
        let signing_rows = runtime.block_on(bench_id_token_signing(&binary, args))?;
        let signing = signing_summary(&signing_rows);
        rows.extend(signing_rows);
        signing
    } else {
        Value::Null
    };

    print_table(&rows);
    if let Some(text) = signing["text"].as_str() {
        println!("{text}");
    }
    for line in &summaries {
        println!("{}", line["text"].as_str().unwrap_or_default());
    }
    let report = json!({
        "started": chrono::Utc::now().to_rfc3339(),
        "cores": cores,
        "duration_s": args.duration.as_secs_f64(),
        "connections": args.connections,
        "argon2_hashes_per_sec_per_thread": hashes_per_sec,
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "summaries": summaries,
        "id_token_signing": signing,
    });
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!(
        "{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", path.display());
    if let Some(previous) = &args.compare {
        let old: Value = serde_json::from_str(
            &std::fs::read_to_string(previous)
                .with_context(|| format!("cannot read {}", previous.display()))?,
        )?;
        print_ratios(&previous.display().to_string(), &rows, &old["rows"]);
    }
    if let Some(baseline) = &args.baseline {
        let before = Value::Array(baseline_rows.iter().map(Row::json).collect());
        print_ratios(&baseline.display().to_string(), &rows, &before);
    }
    Ok(())
}

fn argon2_hashes_per_second(budget: Duration) -> Result<f64> {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let config = auth_core::HashingConfig::default();
    let params = argon2::Params::new(
        config.memory_kib,
        config.iterations,
        config.parallelism,
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"benchmark-salt!!").map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut hashes = 0u32;
    while started.elapsed() < budget {
        argon
            .hash_password(PASSWORD.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        hashes += 1;
    }
    Ok(f64::from(hashes) / started.elapsed().as_secs_f64())
}

/// Slices each scenario's run is cut into by [`side_by_side`].
const SLICES: u32 = 4;

/// Runs the scenarios in turn, a slice of `duration / SLICES` each, until
/// each has had `duration`: a ratio between them then compares the same
/// minutes of a shared machine (whose speed drifts by several percent
/// within one) rather than two runs seconds apart.
async fn side_by_side<const N: usize>(
    scenarios: [Scenario; N],
    addr: std::net::SocketAddr,
    connections: usize,
    duration: Duration,
) -> Result<[Sample; N]> {
    let slice = duration / SLICES;
    let mut totals: Vec<Option<Sample>> = vec![None; N];
    for _ in 0..SLICES {
        for (scenario, total) in scenarios.iter().zip(&mut totals) {
            let sample = load::run(addr, scenario.clone(), connections, slice).await?;
            match total {
                Some(total) => total.merge(&sample)?,
                None => *total = Some(sample),
            }
        }
    }
    let totals: Vec<Sample> = totals.into_iter().flatten().collect();
    totals
        .try_into()
        .map_err(|_| anyhow::anyhow!("a side-by-side scenario ran no slice"))
}

/// Benches one binary on one backend. `baseline`: an older build, which
/// may predate the browser flow (its scenarios are then left out).
async fn bench_backend(
    binary: &Path,
    backend: &str,
    args: &BenchArgs,
    baseline: bool,
) -> Result<(Vec<Row>, f64)> {
    let data = tempfile::tempdir()?;
    let config = data.path().join("bench.toml");
    std::fs::write(
        &config,
        format!("{}{}", flow::client_config(), admin::client_config()),
    )?;
    let mut env = vec![
        ("TESSERA_CONFIG", config.display().to_string()),
        // Minting runs ahead of redeeming: codes must outlive the minting.
        ("TESSERA_OAUTH__CODE_TTL", "10m".to_owned()),
        ("TESSERA_STORAGE__BACKEND", backend.to_owned()),
        ("TESSERA_DATA_DIR", data.path().display().to_string()),
        (
            "TESSERA_TOKENS__SECRET",
            "bench-secret-bench-secret-bench-secret".to_owned(),
        ),
        // All load comes from one address: the per-address limit on
        // /token and /users would measure itself, not the server.
        ("TESSERA_RATE_LIMIT__PER_MINUTE", "0".to_owned()),
    ];
    // Keeps the backend's database alive for the run (dropped = removed).
    let _database: Box<dyn std::any::Any + Send> = match backend {
        "memory" => Box::new(()),
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            env.push((
                "TESSERA_STORAGE__URL",
                format!("sqlite://{}", dir.path().join("bench.db").display()),
            ));
            Box::new(dir)
        }
        "postgres" => {
            let db = store_sql::test_support::TestDatabase::create().await;
            env.push(("TESSERA_STORAGE__URL", db.url().to_owned()));
            Box::new(db)
        }
        "mongo" => {
            let server = crate::mongo::TestMongo::start()?;
            let db = store_mongo::test_support::TestDatabase::create_on(server.url.clone()).await;
            env.push(("TESSERA_STORAGE__URL", db.url().to_owned()));
            // The database is dropped before the server it lives on stops.
            Box::new((db, server))
        }
        other => bail!("unknown backend {other} (memory, sqlite, postgres, mongo)"),
    };
    let server = Server::start(binary, &env)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_mib()?;
    let addr = server.addr;

    let seeded = seed(addr, args.users).await?;
    let conns = args.connections;
    let mut rows = Vec::new();
    let mut measure = |name: &'static str, sample: Sample, server: &Server| -> Result<f64> {
        let row = Row::new(backend, name, &sample, server.peak_rss_mib()?);
        println!(
            "    {name:<12} {:>9.0} req/s  p99 {:>7.2} ms  errors {}",
            row.rps, row.p99, row.errors
        );
        let rps = row.rps;
        rows.push(row);
        Ok(rps)
    };

    server.reset_peak();
    if args.runs(&["healthz"]) {
        let s = load::run(addr, Scenario::Healthz, conns, args.duration).await?;
        measure("healthz", s, &server)?;
        server.reset_peak();
    }
    let me = Scenario::Me {
        tokens: Arc::clone(&seeded.access),
    };
    let url = env
        .iter()
        .find(|(key, _)| *key == "TESSERA_STORAGE__URL")
        .map(|(_, url)| url.as_str());
    let pages = if args.runs(&["admin_users"]) {
        match admin::prepare(backend, url, addr, args.admin_accounts).await {
            Ok(pages) => pages,
            Err(e) if baseline => {
                println!("    admin scenario left out: {e:#}");
                None
            }
            Err(e) => return Err(e.context("preparing the admin scenario")),
        }
    } else {
        None
    };
    match (args.runs(&["users_me"]), pages) {
        (true, Some(pages)) => {
            let [me_sample, page_sample] =
                side_by_side([me.clone(), pages], addr, conns, args.duration).await?;
            measure("users_me", me_sample, &server)?;
            measure("admin_users", page_sample, &server)?;
            server.reset_peak();
        }
        (true, None) => {
            let s = load::run(addr, me.clone(), conns, args.duration).await?;
            measure("users_me", s, &server)?;
            server.reset_peak();
        }
        (false, Some(pages)) => {
            let s = load::run(addr, pages, conns, args.duration).await?;
            measure("admin_users", s, &server)?;
            server.reset_peak();
        }
        (false, None) => {}
    }
    let login = Scenario::Login {
        usernames: Arc::clone(&seeded.usernames),
    };
    if args.runs(&["login"]) {
        let s = load::run(addr, login.clone(), conns, args.duration).await?;
        measure("login", s, &server)?;
        server.reset_peak();
    }
    // The refresh rate sizes the code redemption run.
    let mut refresh_rps = 0.0;
    if args.runs(&["refresh", "authorize", "code_redeem"]) {
        let refresh = Scenario::Refresh {
            seeds: Arc::clone(&seeded.refresh),
        };
        let s = load::run(
            addr,
            refresh,
            conns.min(seeded.refresh.len()),
            args.duration,
        )
        .await?;
        refresh_rps = measure("refresh", s, &server)?;
        server.reset_peak();
    }
    if args.runs(&["sign_in_page", "authorize", "code_redeem"]) {
        match flow::prepare(
            addr,
            &seeded.usernames[..seeded.usernames.len().min(8)],
            conns,
            flow::Scope::OpenId,
        )
        .await
        {
            Ok(prepared) => {
                let s =
                    load::run(addr, flow::sign_in_page(&prepared), conns, args.duration).await?;
                measure("sign_in_page", s, &server)?;
                server.reset_peak();
                // Enough codes for the redemption run at 125 % of the refresh rate.
                let wanted =
                    (refresh_rps * args.duration.as_secs_f64() * 1.25).clamp(1000.0, 400_000.0);
                let (s, codes) = flow::mint(addr, &prepared, wanted as usize, conns).await?;
                measure("authorize", s, &server)?;
                server.reset_peak();
                let s = load::run(addr, flow::redeem(codes), conns, args.duration).await?;
                measure("code_redeem", s, &server)?;
                server.reset_peak();
            }
            Err(e) if baseline => println!("    browser-flow scenarios left out: {e:#}"),
            Err(e) => return Err(e.context("preparing the browser-flow scenarios")),
        }
    }
    if args.runs(&["register"]) {
        let register = Scenario::Register {
            prefix: "bench".into(),
        };
        let s = load::run(addr, register, conns, args.duration).await?;
        measure("register", s, &server)?;
        server.reset_peak();
    }
    if args.runs(&["me_in_storm"]) {
        // A login storm saturating hashing, and /users/me measured meanwhile.
        let me_conns = (conns / 4).max(1);
        let (_, during) = tokio::join!(
            load::run(addr, login, conns, args.duration),
            load::run(addr, me, me_conns, args.duration),
        );
        measure("me_in_storm", during?, &server)?;
    }
    server.stop();
    Ok((rows, idle_rss))
}

/// Codes redeemed with no ID token and with an RS256, ES256 and EdDSA one,
/// side by side on the memory backend (where nothing but the signature
/// differs between the runs).
async fn bench_id_token_signing(binary: &Path, args: &BenchArgs) -> Result<Vec<Row>> {
    const CODES: usize = 6000;
    let variants = SIGNING_SCENARIOS.into_iter().zip([
        ("RS256", flow::Scope::NoIdToken),
        ("RS256", flow::Scope::OpenId),
        ("ES256", flow::Scope::OpenId),
        ("EdDSA", flow::Scope::OpenId),
    ]);
    let mut rows = Vec::new();
    for (name, (algorithm, scope)) in variants {
        let data = tempfile::tempdir()?;
        let config = data.path().join("bench.toml");
        std::fs::write(
            &config,
            format!("{}{}", flow::client_config(), admin::client_config()),
        )?;
        let env = vec![
            ("TESSERA_CONFIG", config.display().to_string()),
            ("TESSERA_OAUTH__CODE_TTL", "10m".to_owned()),
            ("TESSERA_STORAGE__BACKEND", "memory".to_owned()),
            ("TESSERA_DATA_DIR", data.path().display().to_string()),
            ("TESSERA_OIDC__ID_TOKEN_ALGORITHM", algorithm.to_owned()),
            (
                "TESSERA_TOKENS__SECRET",
                "bench-secret-bench-secret-bench-secret".to_owned(),
            ),
            ("TESSERA_RATE_LIMIT__PER_MINUTE", "0".to_owned()),
        ];
        let server = Server::start(binary, &env)?;
        let seeded = seed(server.addr, 8).await?;
        let prepared =
            flow::prepare(server.addr, &seeded.usernames, args.connections, scope).await?;
        let (_, codes) = flow::mint(server.addr, &prepared, CODES, args.connections).await?;
        server.reset_peak();
        let sample = load::run(
            server.addr,
            flow::redeem(codes),
            args.connections,
            args.duration,
        )
        .await?;
        let row = Row::new("memory", name, &sample, server.peak_rss_mib()?);
        println!(
            "    {name:<12} {:>9.0} req/s  p99 {:>7.2} ms  errors {}",
            row.rps, row.p99, row.errors
        );
        rows.push(row);
        server.stop();
    }
    Ok(rows)
}

/// Each algorithm's redemption rate as a share of the rate without an ID token.
fn signing_summary(rows: &[Row]) -> Value {
    let rps = |s| find(rows, "memory", s).map_or(0.0, |r| r.rps);
    let base = rps("redeem_no_id").max(f64::MIN_POSITIVE);
    let (rs, es, ed) = (
        rps("redeem_rs256") / base,
        rps("redeem_es256") / base,
        rps("redeem_eddsa") / base,
    );
    json!({
        "redeem_rs256_over_no_id_token": rs,
        "redeem_es256_over_no_id_token": es,
        "redeem_eddsa_over_no_id_token": ed,
        "text": format!(
            "ID tokens  code redemption with an RS256 ID token = {:.0}%, ES256 = {:.0}%, EdDSA = {:.0}% \
             of redemption without one",
            rs * 100.0, es * 100.0, ed * 100.0
        ),
    })
}

struct Seeded {
    usernames: Arc<Vec<String>>,
    access: Arc<Vec<String>>,
    refresh: Arc<Vec<String>>,
}

/// Registers `users` users and logs each in once.
async fn seed(addr: std::net::SocketAddr, users: usize) -> Result<Seeded> {
    let started = Instant::now();
    let mut usernames = Vec::new();
    let mut access = Vec::new();
    let mut refresh = Vec::new();
    for chunk in (0..users).collect::<Vec<_>>().chunks(8) {
        let calls = chunk.iter().map(|&i| async move {
            let name = format!("seed{i}");
            let body = format!(
                r#"{{"username":"{name}","email":"{name}@bench.test","password":"{PASSWORD}"}}"#
            );
            let (status, _) =
                load::call(addr, Method::POST, "/users", "application/json", body).await?;
            if status != StatusCode::CREATED {
                bail!("seeding {name}: {status}");
            }
            let form = format!(
                "grant_type=password&username={name}&password={}",
                PASSWORD.replace(' ', "+")
            );
            let (status, grant) = load::token(addr, form).await?;
            if status != StatusCode::OK {
                bail!("logging {name} in: {status}");
            }
            let token = |key: &str| grant[key].as_str().map(str::to_owned).context("no token");
            Ok((name, token("access_token")?, token("refresh_token")?))
        });
        for result in futures_join(calls).await {
            let (name, a, r) = result??;
            usernames.push(name);
            access.push(a);
            refresh.push(r);
        }
    }
    println!(
        "    seeded {users} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(Seeded {
        usernames: Arc::new(usernames),
        access: Arc::new(access),
        refresh: Arc::new(refresh),
    })
}

/// Runs the futures concurrently; results in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<Result<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.context("seeding task panicked"));
    }
    out
}

fn find<'a>(rows: &'a [Row], backend: &str, scenario: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.backend == backend && r.scenario == scenario)
}

/// The ratios the performance targets are stated in: those whose
/// scenarios ran (all of them unless `--only` chose some).
fn summary(backend: &str, rows: &[Row], idle_rss: f64, hashes_per_sec: f64, cores: usize) -> Value {
    let row = |s| find(rows, backend, s);
    let ratio = |a, b, of: fn(&Row) -> f64| Some(of(row(a)?) / of(row(b)?).max(f64::MIN_POSITIVE));
    let rps = |r: &Row| r.rps;
    let p50 = |r: &Row| r.p50;
    let p99 = |r: &Row| r.p99;
    let me_vs_floor = ratio("users_me", "healthz", rps);
    let login_vs_limit =
        row("login").map(|r| r.rps / (hashes_per_sec * cores as f64).max(f64::MIN_POSITIVE));
    let storm_p99 = ratio("me_in_storm", "users_me", p99);
    let refresh_per_core = row("refresh").map(|r| r.rps / cores as f64);
    let code_vs_refresh = ratio("code_redeem", "refresh", rps);
    let page_vs_floor = ratio("sign_in_page", "healthz", rps);
    let admin_p50 = ratio("admin_users", "users_me", p50);
    let admin_p99 = ratio("admin_users", "users_me", p99);
    let peak = rows
        .iter()
        .filter(|r| r.backend == backend)
        .map(|r| r.peak_rss_mib)
        .fold(0.0, f64::max);
    let parts = [
        me_vs_floor.map(|x| format!("/users/me = {:.0}% of /healthz", x * 100.0)),
        login_vs_limit.map(|x| {
            format!(
                "logins = {:.0}% of {cores} x {hashes_per_sec:.1} hashes/s",
                x * 100.0
            )
        }),
        storm_p99.map(|x| format!("/users/me p99 in login storm = {x:.2}x idle")),
        refresh_per_core.map(|x| format!("refresh {x:.0}/s per core")),
        code_vs_refresh.map(|x| format!("code redemption = {:.0}% of refresh", x * 100.0)),
        page_vs_floor.map(|x| format!("sign-in page = {:.0}% of /healthz", x * 100.0)),
        Some(format!("RSS idle {idle_rss:.1} MiB, peak {peak:.1} MiB")),
        admin_p50.zip(admin_p99).map(|(p50, p99)| {
            format!("admin page of 100 = {p50:.2}x /users/me at p50, {p99:.2}x at p99")
        }),
    ];
    let text: Vec<String> = parts.into_iter().flatten().collect();
    json!({
        "backend": backend,
        "users_me_over_healthz": me_vs_floor,
        "logins_over_hash_limit": login_vs_limit,
        "me_p99_storm_over_idle": storm_p99,
        "refresh_per_core": refresh_per_core,
        "code_redeem_over_refresh": code_vs_refresh,
        "sign_in_page_over_healthz": page_vs_floor,
        "admin_page_p50_over_users_me": admin_p50,
        "admin_page_p99_over_users_me": admin_p99,
        "idle_rss_mib": idle_rss,
        "peak_rss_mib": peak,
        "text": format!("{backend:<9} {}", text.join(" | ")),
    })
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<9} {:<13} {:>10} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "backend", "scenario", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "peak MiB"
    );
    for r in rows {
        println!(
            "{:<9} {:<13} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>10.1}",
            r.backend, r.scenario, r.rps, r.p50, r.p99, r.p999, r.errors, r.peak_rss_mib
        );
    }
    println!();
}

/// Ratios of `rows` to the same backend and scenario in `before` (report rows).
fn print_ratios(label: &str, rows: &[Row], before: &Value) {
    println!("compared with {label} (new / old):");
    let empty = Vec::new();
    for row in rows {
        let old = before
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .find(|r| r["backend"] == row.backend.as_str() && r["scenario"] == row.scenario);
        if let Some(old) = old {
            let ratio = |new: f64, key: &str| new / old[key].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {:<9} {:<12} req/s x{:.2}  p99 x{:.2}",
                row.backend,
                row.scenario,
                ratio(row.rps, "rps"),
                ratio(row.p99, "p99_ms")
            );
        }
    }
}
