//! `tessera user ...` and `tessera sessions ...`: operator commands on the
//! configured store, with the same rules as the HTTP API.

use std::io::BufRead;

use anyhow::Context;
use auth_core::{AuthError, Registration, Store};

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
                .register(&Registration {
                    username,
                    email,
                    password,
                })
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
        AdminCommand::RevokeSessions { user } => {
            let count = service.revoke_all_sessions(&user).await.map_err(explain)?;
            println!("revoked {count} session(s) of {user}");
        }
    }
    Ok(())
}
