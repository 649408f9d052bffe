//! Operator actions: the `tessera user` / `tessera sessions` commands and
//! their `/admin/v1` twins share these use cases, so both apply the same
//! rules, have the same effect and leave the same audit record. Callers
//! find the account (by login on the command line, by id over HTTP) and
//! say who acts.

use chrono::Utc;
use uuid::Uuid;

use crate::audit::{Actor, Audited, Outcome};
use crate::authorize::BrowserSession;
use crate::error::AuthError;
use crate::model::{Session, User, UserQuery, UserSummary};
use crate::service::{AuthService, Registration};
use crate::store::{Store, StoreError, UniqueField};
use crate::validation::{username_key, Email, Password, ValidationErrors};

/// The most items one page of a listing holds.
pub const MAX_PAGE: u32 = 1000;

/// One page of a listing and where the next one starts (`None`: this was
/// the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// What an operator may change on an account at once; `None` keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub disabled: Option<bool>,
}

/// An account's sessions: token sessions (their id is the `sid` of their
/// tokens) and browser sign-ins.
#[derive(Debug, Clone)]
pub struct UserSessions {
    pub token_sessions: Vec<Session>,
    pub browser_sessions: Vec<BrowserSession>,
}

impl<S: Store> AuthService<S> {
    /// The account a username or email names.
    pub async fn find_user(&self, login: &str) -> Result<User, AuthError> {
        self.find_by_login(login)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// The account with this id.
    pub async fn user_by_id(&self, id: Uuid) -> Result<User, AuthError> {
        self.store()
            .find_user_by_id(id)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// One page of accounts in username order: a single store call; the
    /// cursor is the last account's username key.
    pub async fn list_users(&self, query: UserQuery) -> Result<Page<UserSummary>, AuthError> {
        let limit = page_limit(query.limit);
        let items = self
            .store()
            .search_users(&UserQuery {
                limit: limit + 1,
                ..query
            })
            .await?;
        Ok(into_page(items, limit, |u| username_key(&u.username)))
    }

    /// An account created by an operator: the rules of self-registration.
    pub async fn create_user(
        &self,
        actor: &Actor,
        registration: &Registration,
    ) -> Result<User, AuthError> {
        self.register_as(actor, registration, &[]).await
    }

    /// Changes address, verification and status at once (each only when
    /// given); a new address counts as verified only when the change says so.
    pub async fn update_user(
        &self,
        actor: &Actor,
        user: &User,
        change: &UserChange,
    ) -> Result<User, AuthError> {
        let mut updated = user.clone();
        let new_email = match &change.email {
            Some(raw) => Some(Email::parse(raw).map_err(|e| ValidationErrors(vec![e]))?),
            None => None,
        };
        if new_email.is_some() || change.email_verified.is_some() {
            let email = match new_email {
                Some(email) => email,
                None => Email::parse(&user.email).map_err(|e| ValidationErrors(vec![e]))?,
            };
            let changed_address = email.as_str() != user.email;
            let verified = change
                .email_verified
                .unwrap_or(user.email_verified && !changed_address);
            self.store()
                .update_email(user.id, email.as_str(), email.key(), verified)
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => AuthError::Conflict(UniqueField::Email),
                    other => missing(other),
                })?;
            updated.email = email.as_str().to_owned();
            updated.email_verified = verified;
            self.audit(
                Audited::new(actor.clone(), "user.updated", Outcome::Success).on_user(user.id),
            )
            .await;
        }
        if let Some(disabled) = change.disabled {
            if disabled != user.disabled {
                updated = self.set_user_disabled(actor, &updated, disabled).await?;
            }
        }
        Ok(updated)
    }

    /// Sets a new password (policy applies), ends every session and tells
    /// the person by mail.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        user: &User,
        new_password: &str,
    ) -> Result<(), AuthError> {
        let password = Password::parse("password", new_password, &user.username, &user.email)
            .map_err(|e| ValidationErrors(vec![e]))?;
        let hash = self.hasher().hash(&password).await?;
        self.store_new_password(user, &hash, None, &[]).await?;
        self.audit(
            Audited::new(actor.clone(), "password.reset", Outcome::Success).on_user(user.id),
        )
        .await;
        Ok(())
    }

    /// Disables (ending every session at once) or re-enables an account.
    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        user: &User,
        disabled: bool,
    ) -> Result<User, AuthError> {
        self.store()
            .set_disabled(user.id, disabled)
            .await
            .map_err(missing)?;
        if disabled {
            self.store()
                .revoke_user_sessions(user.id, None, Utc::now())
                .await?;
        }
        let action = if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        self.audit(Audited::new(actor.clone(), action, Outcome::Success).on_user(user.id))
            .await;
        Ok(User {
            disabled,
            ..user.clone()
        })
    }

    /// Deletes an account with its sessions (its audit history stays).
    pub async fn delete_account(&self, actor: &Actor, user: &User) -> Result<(), AuthError> {
        if !self.store().delete_user(user.id).await? {
            return Err(AuthError::UserNotFound);
        }
        self.audit(Audited::new(actor.clone(), "user.deleted", Outcome::Success).on_user(user.id))
            .await;
        Ok(())
    }

    /// Ends every session of an account; returns how many were active.
    pub async fn revoke_all_sessions(&self, actor: &Actor, user: &User) -> Result<u64, AuthError> {
        let ended = self
            .store()
            .revoke_user_sessions(user.id, None, Utc::now())
            .await?;
        self.audit(
            Audited::new(actor.clone(), "sessions.revoked", Outcome::Success).on_user(user.id),
        )
        .await;
        Ok(ended)
    }

    /// An account's active sessions, newest first.
    pub async fn user_sessions(&self, user: &User) -> Result<UserSessions, AuthError> {
        let (token_sessions, browser_sessions) =
            self.store().list_user_sessions(user.id, Utc::now()).await?;
        Ok(UserSessions {
            token_sessions,
            browser_sessions,
        })
    }

    /// Ends one token session by id (the `sid` of its tokens); its refresh
    /// token stops working at once.
    pub async fn revoke_session_by_id(&self, actor: &Actor, id: Uuid) -> Result<(), AuthError> {
        if !self.store().revoke_session(id, Utc::now()).await? {
            return Err(AuthError::SessionNotFound);
        }
        self.audit(Audited::new(actor.clone(), "session.revoked", Outcome::Success).on_session(id))
            .await;
        Ok(())
    }
}

/// A page size within 1..=[`MAX_PAGE`].
pub(crate) fn page_limit(asked: u32) -> u32 {
    asked.clamp(1, MAX_PAGE)
}

/// `fetched` holds up to `limit + 1` items: the extra one only says that
/// another page follows, which starts after the last item kept.
pub(crate) fn into_page<T>(
    mut fetched: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next = if fetched.len() > limit {
        fetched.truncate(limit);
        fetched.last().map(cursor_of)
    } else {
        None
    };
    Page {
        items: fetched,
        next,
    }
}

/// A user deleted between lookup and update is simply not there.
fn missing(err: StoreError) -> AuthError {
    match err {
        StoreError::NotFound => AuthError::UserNotFound,
        other => other.into(),
    }
}
