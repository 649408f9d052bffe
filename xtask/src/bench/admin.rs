//! The administration scenario: pages of 100 accounts out of many
//! (`--admin-accounts`, default 100,000), on the stores the bench can fill
//! directly (SQLite and PostgreSQL: through the store crate, since
//! registering that many over HTTP would be an Argon2 benchmark).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use auth_core::store::UserStore;
use auth_core::{DatabaseUrl, Email, NewUser, StoreSettings, Username};
use futures::StreamExt as _;
use hyper::{Method, StatusCode};

use super::load::{self, Scenario};

pub const ADMIN_CLIENT: &str = "bench-admin";
pub const ADMIN_SECRET: &str = "bench-admin-secret-bench-admin-secret-0123";
/// The page size the scenario asks for.
const PAGE: usize = 100;

/// `[[clients]]` for the administration client.
pub fn client_config() -> String {
    format!(
        "[[clients]]\nid = \"{ADMIN_CLIENT}\"\nsecret = \"{ADMIN_SECRET}\"\n\
         grant_types = [\"client_credentials\"]\nscopes = [\"admin\"]\n"
    )
}

/// Fills the store to `accounts` accounts, takes an admin token and walks
/// the whole list once: the scenario then asks for those pages at random.
/// `None` on a backend the bench cannot fill directly.
pub async fn prepare(
    backend: &str,
    url: Option<&str>,
    addr: SocketAddr,
    accounts: usize,
) -> Result<Option<Scenario>> {
    let Some(url) = url.filter(|_| matches!(backend, "sqlite" | "postgres")) else {
        return Ok(None);
    };
    let started = Instant::now();
    let settings = StoreSettings {
        url: DatabaseUrl::new(url),
        max_connections: 8,
        acquire_timeout: std::time::Duration::from_secs(30),
    };
    let inserted = match backend {
        "sqlite" => fill(store_sql::SqliteStore::connect(&settings).await?, accounts).await?,
        _ => {
            fill(
                store_sql::PostgresStore::connect(&settings).await?,
                accounts,
            )
            .await?
        }
    };
    println!(
        "    added {inserted} accounts through the store in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let token = admin_token(addr).await?;
    let mut paths = Vec::new();
    let mut next = format!("/admin/v1/users?limit={PAGE}");
    let mut listed = 0;
    loop {
        let page = get(addr, &token, &next).await?;
        let items = page["items"].as_array().map_or(0, Vec::len);
        listed += items;
        paths.push(next);
        match page["next_cursor"].as_str() {
            Some(cursor) => next = format!("/admin/v1/users?limit={PAGE}&cursor={cursor}"),
            None => break,
        }
    }
    if listed < accounts {
        bail!("the list held {listed} accounts, {accounts} expected");
    }
    println!("    {listed} accounts in {} pages of {PAGE}", paths.len());
    Ok(Some(Scenario::AdminUsers {
        token,
        paths: Arc::new(paths),
    }))
}

/// Inserts `bench-account-N` until there are `accounts` of them.
async fn fill<S: UserStore>(store: S, accounts: usize) -> Result<usize> {
    // Any string does for the hash: nobody signs in as these accounts.
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0$not-a-real-hash";
    let results: Vec<_> = futures::stream::iter(0..accounts)
        .map(|i| {
            let store = &store;
            async move {
                let name = format!("bench-account-{i:06}");
                let user = NewUser::new(
                    Username::parse(&name).map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    Email::parse(&format!("{name}@bench.test"))
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    hash.to_owned(),
                );
                store
                    .insert_user(&user)
                    .await
                    .context("inserting an account")
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(accounts)
}

async fn admin_token(addr: SocketAddr) -> Result<String> {
    let form = format!(
        "grant_type=client_credentials&client_id={ADMIN_CLIENT}&client_secret={ADMIN_SECRET}"
    );
    let (status, grant) = load::token(addr, form).await?;
    if status != StatusCode::OK {
        bail!("client_credentials for the bench admin client: {status} {grant}");
    }
    grant["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

async fn get(addr: SocketAddr, token: &str, path: &str) -> Result<serde_json::Value> {
    let bearer = format!("Bearer {token}");
    let raw = load::call_raw(
        addr,
        Method::GET,
        path,
        &[("authorization", &bearer)],
        String::new(),
    )
    .await?;
    if raw.status != StatusCode::OK {
        bail!("{path}: {} {}", raw.status, raw.text);
    }
    Ok(serde_json::from_str(&raw.text)?)
}
