//! Operator actions (the `tessera user` / `tessera sessions` commands):
//! the same rules as self-service, addressed by username or email.

use chrono::Utc;

use crate::error::AuthError;
use crate::model::User;
use crate::service::AuthService;
use crate::store::{Store, StoreError};
use crate::validation::{Password, ValidationErrors};

impl<S: Store> AuthService<S> {
    /// The account a username or email names.
    pub async fn find_user(&self, login: &str) -> Result<User, AuthError> {
        self.find_by_login(login)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// Accounts in username order.
    pub async fn list_users(&self, offset: u64, limit: u64) -> Result<Vec<User>, AuthError> {
        Ok(self.store().list_users(offset, limit).await?)
    }

    /// Sets a new password (policy applies), ends every session and tells
    /// the person by mail.
    pub async fn reset_password(&self, login: &str, new_password: &str) -> Result<(), AuthError> {
        let user = self.find_user(login).await?;
        let password = Password::parse("password", new_password, &user.username, &user.email)
            .map_err(|e| ValidationErrors(vec![e]))?;
        let hash = self.hasher().hash(&password).await?;
        self.store_new_password(&user, &hash, None, &[]).await?;
        Ok(())
    }

    /// Disables (ending every session at once) or re-enables an account.
    pub async fn set_user_disabled(&self, login: &str, disabled: bool) -> Result<User, AuthError> {
        let user = self.find_user(login).await?;
        self.store()
            .set_disabled(user.id, disabled)
            .await
            .map_err(missing)?;
        if disabled {
            self.store()
                .revoke_user_sessions(user.id, None, Utc::now())
                .await?;
        }
        Ok(User { disabled, ..user })
    }

    /// Deletes an account with its sessions.
    pub async fn delete_account(&self, login: &str) -> Result<User, AuthError> {
        let user = self.find_user(login).await?;
        if !self.store().delete_user(user.id).await? {
            return Err(AuthError::UserNotFound);
        }
        Ok(user)
    }

    /// Ends every session of an account; returns how many were active.
    pub async fn revoke_all_sessions(&self, login: &str) -> Result<u64, AuthError> {
        let user = self.find_user(login).await?;
        Ok(self
            .store()
            .revoke_user_sessions(user.id, None, Utc::now())
            .await?)
    }
}

/// A user deleted between lookup and update is simply not there.
fn missing(err: StoreError) -> AuthError {
    match err {
        StoreError::NotFound => AuthError::UserNotFound,
        other => other.into(),
    }
}
