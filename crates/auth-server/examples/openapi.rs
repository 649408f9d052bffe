//! Prints the OpenAPI document (`cargo xtask openapi`).

use auth_server::config::Config;
use auth_server::state::build_state;

fn main() -> anyhow::Result<()> {
    let mut config = Config::default();
    // The document does not depend on keys; avoid touching the data folder.
    config.tokens.secret = Some("openapi-document-only-secret-0123456789".into());
    let state = build_state(store_memory::MemoryStore::new(), &config)?;
    println!("{}", auth_server::api::openapi_json(&state));
    Ok(())
}
