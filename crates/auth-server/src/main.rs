//! `tessera`: the server and its admin commands.

use auth_server::backend::{self, Command};
use auth_server::{telemetry, Config};
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load()?;
    telemetry::init(&config);
    let command = match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => Command::Serve,
        Cmd::Migrate => Command::Migrate,
    };
    backend::run(config, command).await
}
