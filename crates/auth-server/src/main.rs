//! `tessera`: the server and its admin commands.

use std::path::PathBuf;

use auth_core::SigningAlgorithm;
use auth_server::backend::{self, Command};
use auth_server::{keys, telemetry, Config};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Self-hosted authentication server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage access-token signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Write a new private key (PKCS#8 PEM, mode 0600) as OUT/<kid>.pem.
    Generate {
        /// EdDSA, ES256 or RS256.
        #[arg(long)]
        alg: SigningAlgorithm,
        /// The folder (tokens.keys_dir).
        #[arg(long)]
        out: PathBuf,
        /// Defaults to <alg>-<UTC time>-<random>, which sorts by age.
        #[arg(long)]
        kid: Option<String>,
    },
    /// List the configured keys: kid, algorithm, and which one signs.
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Keys(KeysCmd::Generate { alg, out, kid })) = &cli.command {
        // Needs no configuration: it only writes a file.
        let (kid, path) = keys::write_new_key(out, *alg, kid.as_deref())?;
        println!("{kid}\t{}", path.display());
        return Ok(());
    }
    let config = Config::load()?;
    telemetry::init(&config);
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => backend::run(config, Command::Serve).await,
        Cmd::Migrate => backend::run(config, Command::Migrate).await,
        Cmd::Keys(KeysCmd::List) => {
            let keys = keys::load_token_keys(&config)?;
            let algorithm_of = |kid: &str| {
                keys.public_jwks()
                    .iter()
                    .find(|jwk| jwk.kid == kid)
                    .map_or("HS256", |jwk| jwk.alg.as_str())
                    .to_owned()
            };
            for kid in keys.verifying_kids() {
                let role = if kid == keys.signing_kid() {
                    "signing"
                } else {
                    "verify-only"
                };
                println!("{kid}\t{}\t{role}", algorithm_of(kid));
            }
            Ok(())
        }
        Cmd::Keys(KeysCmd::Generate { .. }) => Ok(()),
    }
}
