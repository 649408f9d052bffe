//! `tessera`: the server and its admin commands.

use std::path::PathBuf;

use auth_core::SigningAlgorithm;
use auth_server::admin::{AdminCommand, ClientOptions};
use auth_server::backend::{self, Command};
use auth_server::{keys, telemetry, Config};
use clap::{Parser, Subcommand};

/// mimalloc: see `tessera-alloc` for why, and what it is told.
#[global_allocator]
static ALLOCATOR: tessera_alloc::Allocator = tessera_alloc::Allocator;

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
    /// Manage accounts (passwords are read from standard input).
    #[command(subcommand)]
    User(UserCmd),
    /// Manage sessions.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Manage OAuth clients (configured ones are listed but edited in the file).
    #[command(subcommand)]
    Client(ClientCmd),
    /// Check the mail settings.
    #[command(subcommand)]
    Mail(MailCmd),
    /// Exit 0 when the server answers 2xx (container health checks).
    Probe {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
    /// List accounts in username order: id, username, email, status, created.
    List {
        /// Only accounts whose username or email starts with this (any case).
        #[arg(long)]
        search: Option<String>,
        /// At most this many (default: all).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Disable an account (username or email); its sessions end at once.
    Disable { user: String },
    /// Re-enable an account.
    Enable { user: String },
    /// Delete an account and its sessions.
    Delete { user: String },
    /// Replace a password (read from standard input); every session ends.
    SetPassword { user: String },
    /// Remove every second factor (authenticator app, passkeys, recovery
    /// codes) of an account and end every session: for a lost phone or key.
    ResetFactors { user: String },
}

#[derive(Subcommand)]
enum MailCmd {
    /// Send one message now (not through the outbox) and print the mail
    /// server's answer; exit status 1 when it is refused or unreachable.
    Test {
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Register a client. A confidential one gets a generated secret,
    /// printed once (only its hash is stored).
    Add {
        id: String,
        #[command(flatten)]
        options: ClientOptions,
        /// A public client (browser or native app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
    },
    /// List clients: id, type, source, name, redirect URIs.
    List,
    /// Everything about one client (never its secret).
    Show { id: String },
    /// Change a stored client; what is not given stays.
    Update {
        id: String,
        #[command(flatten)]
        options: ClientOptions,
    },
    /// Replace a confidential client's secret (printed once).
    RotateSecret { id: String },
    /// Delete a stored client.
    Delete { id: String },
}

#[derive(Subcommand)]
enum SessionsCmd {
    /// End every session of a user.
    Revoke {
        #[arg(long)]
        user: String,
    },
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
    tessera_alloc::return_freed_memory_at_once();
    let cli = Cli::parse();
    if let Some(Cmd::Keys(KeysCmd::Generate { alg, out, kid })) = &cli.command {
        // Needs no configuration: it only writes a file.
        let (kid, path) = keys::write_new_key(out, *alg, kid.as_deref())?;
        println!("{kid}\t{}", path.display());
        return Ok(());
    }
    if let Some(Cmd::Probe { url }) = &cli.command {
        return auth_server::probe::probe(url, std::time::Duration::from_secs(3));
    }
    let config = Config::load()?;
    let serving = matches!(cli.command, None | Some(Cmd::Serve));
    telemetry::init(&config, !serving);
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
        Cmd::Keys(KeysCmd::Generate { .. }) | Cmd::Probe { .. } => Ok(()),
        Cmd::Mail(MailCmd::Test { to }) => match auth_server::mail::send_test(&config, &to).await {
            Ok(reply) => {
                println!("{reply}");
                Ok(())
            }
            Err(e) => {
                eprintln!("mail test failed: {e}");
                std::process::exit(1);
            }
        },
        Cmd::User(user) => {
            let admin = match user {
                UserCmd::Add { username, email } => AdminCommand::AddUser { username, email },
                UserCmd::List { search, limit } => AdminCommand::ListUsers { search, limit },
                UserCmd::Disable { user } => AdminCommand::Disable { user },
                UserCmd::Enable { user } => AdminCommand::Enable { user },
                UserCmd::Delete { user } => AdminCommand::Delete { user },
                UserCmd::SetPassword { user } => AdminCommand::SetPassword { user },
                UserCmd::ResetFactors { user } => AdminCommand::ResetFactors { user },
            };
            backend::run(config, Command::Admin(admin)).await
        }
        Cmd::Client(client) => {
            let admin = match client {
                ClientCmd::Add {
                    id,
                    options,
                    public,
                } => AdminCommand::AddClient {
                    id,
                    options,
                    public,
                },
                ClientCmd::List => AdminCommand::ListClients,
                ClientCmd::Show { id } => AdminCommand::ShowClient { id },
                ClientCmd::Update { id, options } => AdminCommand::UpdateClient { id, options },
                ClientCmd::RotateSecret { id } => AdminCommand::RotateClientSecret { id },
                ClientCmd::Delete { id } => AdminCommand::DeleteClient { id },
            };
            backend::run(config, Command::Admin(admin)).await
        }
        Cmd::Sessions(SessionsCmd::Revoke { user }) => {
            backend::run(
                config,
                Command::Admin(AdminCommand::RevokeSessions { user }),
            )
            .await
        }
    }
}
