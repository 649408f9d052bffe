//! `tessera user ...` and `tessera sessions ...`: operator commands on the
//! configured store, with the same rules as the HTTP API.

use std::io::BufRead;

use anyhow::Context;
use auth_core::client::ClientSource;
use auth_core::{AuthError, Client, ClientRegistration, GrantType, Registration, Store};

use crate::api::AppState;

/// One operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Create an account; the password is read from standard input.
    AddUser {
        username: String,
        email: String,
    },
    ListUsers {
        offset: u64,
        limit: u64,
    },
    Disable {
        user: String,
    },
    Enable {
        user: String,
    },
    Delete {
        user: String,
    },
    /// Replace the password (read from standard input); ends every session.
    SetPassword {
        user: String,
    },
    RevokeSessions {
        user: String,
    },
    /// Removes every second factor and ends every session.
    ResetFactors {
        user: String,
    },
    AddClient {
        id: String,
        options: ClientOptions,
        public: bool,
    },
    ListClients,
    ShowClient {
        id: String,
    },
    UpdateClient {
        id: String,
        options: ClientOptions,
    },
    RotateClientSecret {
        id: String,
    },
    DeleteClient {
        id: String,
    },
}

/// The settable fields of a client, as given on the command line. For
/// `update`, what is not given stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ClientOptions {
    /// Shown on the consent page (default: the id).
    #[arg(long)]
    pub name: Option<String>,
    /// A redirect URI (repeat for several); exact match.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token, password or client_credentials
    /// (repeatable; default: authorization_code and refresh_token).
    #[arg(long = "grant-type", value_parser = parse_grant_type)]
    pub grant_types: Vec<GrantType>,
    /// An allowed scope (repeatable; default: openid profile email offline_access).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Skip the consent page for this client (`--first-party` or `--first-party false`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub first_party: Option<bool>,
}

fn parse_grant_type(value: &str) -> Result<GrantType, String> {
    GrantType::parse(value).ok_or_else(|| {
        format!("unknown grant type `{value}` (authorization_code, refresh_token, password, client_credentials)")
    })
}

impl ClientOptions {
    /// Sets what was given on `registration`.
    fn apply(self, registration: &mut ClientRegistration) {
        if let Some(name) = self.name {
            registration.name = Some(name);
        }
        if !self.redirect_uris.is_empty() {
            registration.redirect_uris = self.redirect_uris;
        }
        if !self.post_logout_redirect_uris.is_empty() {
            registration.post_logout_redirect_uris = self.post_logout_redirect_uris;
        }
        if !self.grant_types.is_empty() {
            registration.grant_types = self.grant_types;
        }
        if !self.scopes.is_empty() {
            registration.scopes = self.scopes;
        }
        if let Some(first_party) = self.first_party {
            registration.first_party = first_party;
        }
    }
}

fn describe(client: &Client, source: ClientSource) -> String {
    let join = |items: &[String]| items.join(" ");
    let grants: Vec<String> = client.grant_types.iter().map(|g| g.to_string()).collect();
    [
        format!("id\t{}", client.id),
        format!("name\t{}", client.name),
        format!(
            "type\t{}",
            if client.is_public() {
                "public"
            } else {
                "confidential"
            }
        ),
        format!(
            "source\t{}",
            match source {
                ClientSource::Config => "configuration",
                ClientSource::Store => "store",
            }
        ),
        format!("redirect_uris\t{}", join(&client.redirect_uris)),
        format!(
            "post_logout_redirect_uris\t{}",
            join(&client.post_logout_redirect_uris)
        ),
        format!("grant_types\t{}", grants.join(" ")),
        format!("scopes\t{}", join(&client.scopes)),
        format!("first_party\t{}", client.first_party),
        format!("created_at\t{}", client.created_at.to_rfc3339()),
    ]
    .join("\n")
}

/// Reads one line from standard input (a password: never taken from the
/// command line, where `ps` would show it). The line ending is dropped;
/// nothing else is trimmed.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password.to_owned())
}

/// Turns a domain error into a message for the terminal.
fn explain(err: AuthError) -> anyhow::Error {
    match err {
        AuthError::Validation(errors) => anyhow::anyhow!("refused: {errors}"),
        other => anyhow::anyhow!("{other}"),
    }
}

pub async fn run<S: Store>(state: &AppState<S>, command: AdminCommand) -> anyhow::Result<()> {
    let service = &state.service;
    match command {
        AdminCommand::AddUser { username, email } => {
            let password = read_password()?;
            let user = service
                .register(
                    &Registration {
                        username,
                        email,
                        password,
                    },
                    &[],
                )
                .await
                .map_err(explain)?;
            println!("created {} ({})", user.username, user.id);
        }
        AdminCommand::ListUsers { offset, limit } => {
            for user in service.list_users(offset, limit).await.map_err(explain)? {
                let status = if user.disabled { "disabled" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    user.id,
                    user.username,
                    user.email,
                    status,
                    user.created_at.to_rfc3339()
                );
            }
        }
        AdminCommand::Disable { user } => {
            let user = service
                .set_user_disabled(&user, true)
                .await
                .map_err(explain)?;
            println!("disabled {}; its sessions are revoked", user.username);
        }
        AdminCommand::Enable { user } => {
            let user = service
                .set_user_disabled(&user, false)
                .await
                .map_err(explain)?;
            println!("enabled {}", user.username);
        }
        AdminCommand::Delete { user } => {
            let user = service.delete_account(&user).await.map_err(explain)?;
            println!("deleted {} ({})", user.username, user.id);
        }
        AdminCommand::SetPassword { user } => {
            let password = read_password()?;
            service
                .reset_password(&user, &password)
                .await
                .map_err(explain)?;
            println!("password of {user} replaced; its sessions are revoked");
        }
        AdminCommand::ResetFactors { user } => {
            let (_, removed) = service.reset_factors(&user).await.map_err(explain)?;
            println!(
                "removed {removed} second factor(s) and the recovery codes of {user}; \
                 every session of theirs has ended"
            );
        }
        AdminCommand::RevokeSessions { user } => {
            let count = service.revoke_all_sessions(&user).await.map_err(explain)?;
            println!("revoked {count} session(s) of {user}");
        }
        AdminCommand::AddClient {
            id,
            options,
            public,
        } => {
            let mut registration = ClientRegistration {
                id,
                ..ClientRegistration::default()
            };
            options.apply(&mut registration);
            let added = service
                .add_client(&registration, public)
                .await
                .map_err(explain)?;
            println!("{}", describe(&added.client, ClientSource::Store));
            if let Some(secret) = added.secret {
                // Shown once: only its hash is stored.
                println!("client_secret\t{}", secret.expose());
                eprintln!("Store the client secret now: it cannot be shown again.");
            }
        }
        AdminCommand::ListClients => {
            for (client, source) in service.all_clients().await.map_err(explain)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    client.id,
                    if client.is_public() {
                        "public"
                    } else {
                        "confidential"
                    },
                    match source {
                        ClientSource::Config => "configuration",
                        ClientSource::Store => "store",
                    },
                    client.name,
                    client.redirect_uris.join(" ")
                );
            }
        }
        AdminCommand::ShowClient { id } => {
            let (client, source) = service.client(&id).await.map_err(explain)?;
            println!("{}", describe(&client, source));
        }
        AdminCommand::UpdateClient { id, options } => {
            let client = service
                .update_client(&id, |registration| options.apply(registration))
                .await
                .map_err(explain)?;
            println!("{}", describe(&client, ClientSource::Store));
        }
        AdminCommand::RotateClientSecret { id } => {
            let secret = service.rotate_client_secret(&id).await.map_err(explain)?;
            println!("client_secret\t{}", secret.expose());
            eprintln!(
                "The old secret no longer works. Store this one now: it cannot be shown again."
            );
        }
        AdminCommand::DeleteClient { id } => {
            service.delete_client(&id).await.map_err(explain)?;
            println!("deleted client {id}");
        }
    }
    Ok(())
}
