//! `tessera user ...` and `tessera sessions ...`: operator commands on the
//! configured store, with the same rules as the HTTP API.

use std::io::BufRead;

use anyhow::Context;
use auth_core::client::ClientSource;
use auth_core::{
    Actor, AuthError, Client, ClientRegistration, GrantType, Registration, Store, UserQuery,
    UserSummary, ADMIN_SCOPE,
};

use crate::api::AppState;

/// One operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Create an account; the password is read from standard input.
    AddUser {
        username: String,
        email: String,
    },
    /// Accounts in username order, optionally only those whose username
    /// or email starts with `search`, at most `limit` of them.
    ListUsers {
        search: Option<String>,
        limit: Option<u64>,
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
    /// An administration client: adds the client_credentials grant and the
    /// `admin` scope (with nothing else given, only those), for `/admin/v1`.
    #[arg(long)]
    pub admin: bool,
}

fn parse_grant_type(value: &str) -> Result<GrantType, String> {
    GrantType::parse(value).ok_or_else(|| {
        format!("unknown grant type `{value}` (authorization_code, refresh_token, password, client_credentials)")
    })
}

impl ClientOptions {
    /// Sets what was given on `registration`. `defaults`: the registration
    /// holds defaults (a new client), which `--admin` alone replaces rather
    /// than adds to; an existing client keeps what it has.
    fn apply(self, registration: &mut ClientRegistration, defaults: bool) {
        let (grants_given, scopes_given) = (!self.grant_types.is_empty(), !self.scopes.is_empty());
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
        if self.admin {
            if defaults && !grants_given {
                registration.grant_types.clear();
            }
            if !registration
                .grant_types
                .contains(&GrantType::ClientCredentials)
            {
                registration.grant_types.push(GrantType::ClientCredentials);
            }
            if defaults && !scopes_given {
                registration.scopes.clear();
            }
            if !registration.scopes.iter().any(|s| s == ADMIN_SCOPE) {
                registration.scopes.push(ADMIN_SCOPE.to_owned());
            }
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

/// One account per line: id, username, email, status, created.
fn print_user(user: &UserSummary) {
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

pub async fn run<S: Store>(state: &AppState<S>, command: AdminCommand) -> anyhow::Result<()> {
    let service = &state.service;
    // The command line is the operator's own hand: audit records say so.
    let operator = &Actor::Operator;
    match command {
        AdminCommand::AddUser { username, email } => {
            let password = read_password()?;
            let user = service
                .create_user(
                    operator,
                    &Registration {
                        username,
                        email,
                        password,
                    },
                )
                .await
                .map_err(explain)?;
            println!("created {} ({})", user.username, user.id);
        }
        AdminCommand::ListUsers { search, limit } => {
            let mut remaining = limit.unwrap_or(u64::MAX);
            let mut after = None;
            while remaining > 0 {
                let page_size = u32::try_from(remaining.min(u64::from(auth_core::MAX_PAGE)))
                    .unwrap_or(auth_core::MAX_PAGE);
                let page = service
                    .list_users(UserQuery::search(search.as_deref(), after, page_size))
                    .await
                    .map_err(explain)?;
                page.items.iter().for_each(print_user);
                remaining = remaining.saturating_sub(page.items.len() as u64);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        AdminCommand::Disable { user } => {
            let user = service.find_user(&user).await.map_err(explain)?;
            let user = service
                .set_user_disabled(operator, &user, true)
                .await
                .map_err(explain)?;
            println!("disabled {}; its sessions are revoked", user.username);
        }
        AdminCommand::Enable { user } => {
            let user = service.find_user(&user).await.map_err(explain)?;
            let user = service
                .set_user_disabled(operator, &user, false)
                .await
                .map_err(explain)?;
            println!("enabled {}", user.username);
        }
        AdminCommand::Delete { user } => {
            let user = service.find_user(&user).await.map_err(explain)?;
            service
                .delete_account(operator, &user)
                .await
                .map_err(explain)?;
            println!("deleted {} ({})", user.username, user.id);
        }
        AdminCommand::SetPassword { user } => {
            let password = read_password()?;
            let user = service.find_user(&user).await.map_err(explain)?;
            service
                .reset_password(operator, &user, &password)
                .await
                .map_err(explain)?;
            println!(
                "password of {} replaced; its sessions are revoked",
                user.username
            );
        }
        AdminCommand::ResetFactors { user } => {
            let user = service.find_user(&user).await.map_err(explain)?;
            let removed = service
                .reset_factors(operator, &user)
                .await
                .map_err(explain)?;
            println!(
                "removed {removed} second factor(s) and the recovery codes of {}; \
                 every session of theirs has ended",
                user.username
            );
        }
        AdminCommand::RevokeSessions { user } => {
            let user = service.find_user(&user).await.map_err(explain)?;
            let count = service
                .revoke_all_sessions(operator, &user)
                .await
                .map_err(explain)?;
            println!("revoked {count} session(s) of {}", user.username);
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
            options.apply(&mut registration, true);
            let added = service
                .add_client(operator, &registration, public)
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
                .update_client(operator, &id, |registration| {
                    options.apply(registration, false)
                })
                .await
                .map_err(explain)?;
            println!("{}", describe(&client, ClientSource::Store));
        }
        AdminCommand::RotateClientSecret { id } => {
            let secret = service
                .rotate_client_secret(operator, &id)
                .await
                .map_err(explain)?;
            println!("client_secret\t{}", secret.expose());
            eprintln!(
                "The old secret no longer works. Store this one now: it cannot be shown again."
            );
        }
        AdminCommand::DeleteClient { id } => {
            service
                .delete_client(operator, &id)
                .await
                .map_err(explain)?;
            println!("deleted client {id}");
        }
    }
    Ok(())
}
