//! The account lifecycle by mail: verifying an address, resetting a
//! forgotten password, changing the address, and the notices that follow.
//!
//! Every message carries, at most, one link to a page on
//! `server.public_url` with a random token; the store keeps only its
//! SHA-256. Opening the link (`GET`, what a mail scanner does) only looks
//! the token up ([`AuthService::link_state`]); the page's form `POST`
//! spends it, once, through [`MailStore::use_email_link`], which applies
//! the change and queues any notice in the same operation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{Actor, Audited, Outcome};
use crate::error::AuthError;
use crate::mail::{MailKind, MailValues, Mailer, OutgoingMail};
use crate::model::{NewUser, Session, TokenDigest, User};
use crate::rate::RateLimit;
use crate::refresh::OpaqueToken;
use crate::service::{account_throttle_key, chrono_duration, AuthService, Registration};
use crate::store::{Store, StoreError, UniqueField};
use crate::validation::{Email, FieldError, Password, ValidationErrors};

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Proves the account's address.
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
    /// Proves a new address and switches the account to it.
    ChangeEmail,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify_email",
            LinkPurpose::ResetPassword => "reset_password",
            LinkPurpose::ChangeEmail => "change_email",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            LinkPurpose::VerifyEmail,
            LinkPurpose::ResetPassword,
            LinkPurpose::ChangeEmail,
        ]
        .into_iter()
        .find(|p| p.as_str() == value)
    }

    /// The page a link of this purpose opens.
    pub fn page(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail | LinkPurpose::ChangeEmail => EMAIL_CONFIRM_PATH,
            LinkPurpose::ResetPassword => PASSWORD_RESET_PATH,
        }
    }
}

/// The page of verification and email-change links.
pub const EMAIL_CONFIRM_PATH: &str = "/email/confirm";
/// The page of password-reset links.
pub const PASSWORD_RESET_PATH: &str = "/password/reset";

/// A stored one-time link (its token only as a digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLink {
    pub digest: TokenDigest,
    pub purpose: LinkPurpose,
    pub user_id: Uuid,
    /// The address the message went to: the account's (verification,
    /// reset) or the new one (change).
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// What spending a link changes, applied by the store with the spending.
#[derive(Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Marks the account's address verified, if it is still `email_key`.
    VerifyEmail { email_key: String },
    /// A new password hash; every session ends.
    ResetPassword { password_hash: String },
    /// The account's new (verified) address.
    ChangeEmail { email: Email },
}

impl std::fmt::Debug for AccountChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountChange::VerifyEmail { .. } => f.write_str("VerifyEmail"),
            AccountChange::ResetPassword { .. } => f.write_str("ResetPassword"),
            AccountChange::ChangeEmail { .. } => f.write_str("ChangeEmail"),
        }
    }
}

/// What a presented link token is, for its page.
// Built once per page view and matched at once: boxing the large variant
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Spendable: the page shows its button.
    Valid { link: EmailLink, user: User },
    /// Used before (410).
    Used(LinkPurpose),
    /// Past its lifetime (410).
    Expired(LinkPurpose),
    /// No such link, a link for another page, or one whose account is gone.
    Unknown,
}

/// The rate-limit keys, kept apart from the login throttle's.
fn resend_key(user_id: Uuid) -> String {
    format!("mail:verify:{user_id}")
}
fn change_key(user_id: Uuid) -> String {
    format!("mail:change:{user_id}")
}
fn forgot_address_key(email_key: &str) -> String {
    format!("forgot:email:{email_key}")
}
fn forgot_client_key(client: &str) -> String {
    format!("forgot:client:{client}")
}

impl<S: Store> AuthService<S> {
    fn mailer(&self) -> Result<&Mailer, AuthError> {
        self.mail()
            .ok_or_else(|| AuthError::Internal("mail is not configured".into()))
    }

    /// Counts one request against `limit` under `key`; refused with
    /// [`AuthError::RateLimited`] once over it.
    pub(crate) async fn admit(&self, key: &str, limit: &RateLimit) -> Result<(), AuthError> {
        let now = Utc::now();
        let state = self
            .store()
            .update_throttle(key, |state| limit.after_request(state, now))
            .await?;
        match limit.refused_for(&state, now) {
            Some(retry_after) => Err(AuthError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// A new link for `user` to `email` and the message carrying it.
    fn link_and_message(
        &self,
        purpose: LinkPurpose,
        kind: MailKind,
        user: &User,
        email: &str,
        locales: &[String],
    ) -> Result<(EmailLink, OutgoingMail), AuthError> {
        let mailer = self.mailer()?;
        let token = OpaqueToken::generate();
        let now = crate::model::to_stored_precision(Utc::now());
        let link = EmailLink {
            digest: token.digest(),
            purpose,
            user_id: user.id,
            email: email.to_owned(),
            created_at: now,
            expires_at: now + chrono_duration(mailer.link_ttl),
            used_at: None,
        };
        let values = MailValues {
            username: user.username.clone(),
            email: email.to_owned(),
            link: Some(mailer.link_url(purpose.page(), token.expose())),
            link_minutes: Some(mailer.link_minutes()),
            new_email: None,
        };
        let message = mailer.message(kind, email, &values, locales)?;
        Ok((link, message))
    }

    /// A notice (no link) to `to` about `user`.
    fn notice(
        &self,
        kind: MailKind,
        user: &User,
        to: &str,
        new_email: Option<&str>,
        locales: &[String],
    ) -> Result<OutgoingMail, AuthError> {
        let values = MailValues {
            username: user.username.clone(),
            email: to.to_owned(),
            link: None,
            link_minutes: None,
            new_email: new_email.map(str::to_owned),
        };
        self.mailer()?.message(kind, to, &values, locales)
    }

    /// Creates an account; with mail configured, its verification message
    /// is queued in the same store operation.
    pub async fn register(
        &self,
        input: &Registration,
        locales: &[String],
    ) -> Result<User, AuthError> {
        self.register_as(&Actor::Anonymous, input, locales).await
    }

    /// Registration on someone's behalf (`actor`: an operator or an
    /// administration client), with the same rules and audit record.
    pub async fn register_as(
        &self,
        actor: &Actor,
        input: &Registration,
        locales: &[String],
    ) -> Result<User, AuthError> {
        let (username, email, password) = input.validate()?;
        let hash = self.hasher().hash(&password).await?;
        let new_user = NewUser::new(username, email, hash);
        let user = new_user.clone().into_user();
        if self.mail().is_some() {
            let (link, message) = self.link_and_message(
                LinkPurpose::VerifyEmail,
                MailKind::VerifyEmail,
                &user,
                &user.email,
                locales,
            )?;
            self.store()
                .insert_user_with_link(&new_user, &link, &message)
                .await?;
        } else {
            self.store().insert_user(&new_user).await?;
        }
        self.audit(Audited::new(actor.clone(), "user.created", Outcome::Success).on_user(user.id))
            .await;
        Ok(user)
    }

    /// Sends the verification message again (`POST
    /// /users/me/email/verification`), within the resend limit.
    pub async fn resend_verification(
        &self,
        user: &User,
        locales: &[String],
    ) -> Result<(), AuthError> {
        if user.email_verified {
            return Err(AuthError::AlreadyVerified);
        }
        let mailer = self.mailer()?;
        self.admit(&resend_key(user.id), &mailer.resend_limit)
            .await?;
        let (link, message) = self.link_and_message(
            LinkPurpose::VerifyEmail,
            MailKind::VerifyEmail,
            user,
            &user.email,
            locales,
        )?;
        self.store().create_email_link(&link, &message).await?;
        Ok(())
    }

    /// The checks of `/password/forgot` that answer before anything else:
    /// the address's form, then the per-address limit (unknown addresses
    /// count the same as known ones) and the per-client-address limit.
    /// Returns the address to pass to [`send_password_reset`](Self::send_password_reset).
    pub async fn admit_password_reset(
        &self,
        email: &str,
        client_address: Option<&str>,
    ) -> Result<Email, AuthError> {
        let email = Email::parse(email).map_err(|e| ValidationErrors(vec![e]))?;
        let mailer = self.mailer()?;
        if let Some(client) = client_address {
            self.admit(&forgot_client_key(client), &mailer.forgot_client_limit)
                .await?;
        }
        self.admit(
            &forgot_address_key(email.key()),
            &mailer.forgot_address_limit,
        )
        .await?;
        Ok(email)
    }

    /// Queues a reset link when an enabled account has `email`; does
    /// nothing otherwise. The server runs it after answering, so known and
    /// unknown addresses get the same answer in the same time.
    pub async fn send_password_reset(
        &self,
        email: &Email,
        locales: &[String],
    ) -> Result<(), AuthError> {
        let Some(user) = self.store().find_user_by_email(email.key()).await? else {
            return Ok(());
        };
        if user.disabled {
            return Ok(());
        }
        let (link, message) = self.link_and_message(
            LinkPurpose::ResetPassword,
            MailKind::ResetPassword,
            &user,
            &user.email,
            locales,
        )?;
        self.store().create_email_link(&link, &message).await?;
        Ok(())
    }

    /// What the token of a link opened on the page for `purposes` is. Never
    /// spends it.
    pub async fn link_state(
        &self,
        token: &str,
        purposes: &[LinkPurpose],
    ) -> Result<LinkState, AuthError> {
        let digest = OpaqueToken::from_presented(token).digest();
        let Some(link) = self.store().find_email_link(&digest).await? else {
            return Ok(LinkState::Unknown);
        };
        if !purposes.contains(&link.purpose) {
            return Ok(LinkState::Unknown);
        }
        if link.used_at.is_some() {
            return Ok(LinkState::Used(link.purpose));
        }
        if link.expires_at <= Utc::now() {
            return Ok(LinkState::Expired(link.purpose));
        }
        match self.store().find_user_by_id(link.user_id).await? {
            Some(user) if !user.disabled => Ok(LinkState::Valid { link, user }),
            _ => Ok(LinkState::Unknown),
        }
    }

    /// Spends `link` (checked valid just before) with `change`: `None` when
    /// done, or the state to show when a concurrent request spent it first.
    async fn spend(
        &self,
        link: &EmailLink,
        change: &AccountChange,
        mail: Option<&OutgoingMail>,
    ) -> Result<Option<LinkState>, AuthError> {
        let spent = self
            .store()
            .use_email_link(&link.digest, Utc::now(), change, mail)
            .await?;
        if spent {
            let action = match change {
                AccountChange::VerifyEmail { .. } => "email.verified",
                AccountChange::ChangeEmail { .. } => "email.changed",
                AccountChange::ResetPassword { .. } => "password.reset",
            };
            // Whoever holds the link proved they read the account's mail.
            self.audit(
                Audited::new(Actor::User(link.user_id), action, Outcome::Success)
                    .on_user(link.user_id),
            )
            .await;
        }
        Ok((!spent).then_some(LinkState::Used(link.purpose)))
    }

    /// The **Confirm email** button of a verification or email-change link.
    /// `Ok(None)` when done; otherwise the state the page shows instead.
    pub async fn confirm_email(
        &self,
        token: &str,
        locales: &[String],
    ) -> Result<Option<LinkState>, AuthError> {
        let state = self
            .link_state(token, &[LinkPurpose::VerifyEmail, LinkPurpose::ChangeEmail])
            .await?;
        let LinkState::Valid { link, user } = state else {
            return Ok(Some(state));
        };
        let outcome = match link.purpose {
            LinkPurpose::ChangeEmail => {
                let email = Email::parse(&link.email)
                    .map_err(|_| AuthError::Internal("stored link address is invalid".into()))?;
                let notice = self.notice(
                    MailKind::EmailChanged,
                    &user,
                    &user.email,
                    Some(email.as_str()),
                    locales,
                )?;
                let change = AccountChange::ChangeEmail { email };
                self.spend(&link, &change, Some(&notice)).await?
            }
            _ => {
                let key_of = |address: &str| Email::parse(address).map(|e| e.key().to_owned()).ok();
                let Some(link_key) = key_of(&link.email) else {
                    return Ok(Some(LinkState::Unknown));
                };
                if key_of(&user.email).as_deref() != Some(link_key.as_str()) {
                    // The account has another address now.
                    return Ok(Some(LinkState::Unknown));
                }
                let change = AccountChange::VerifyEmail {
                    email_key: link_key,
                };
                self.spend(&link, &change, None).await?
            }
        };
        Ok(outcome)
    }

    /// The **Set new password** button of a reset link: the usual policy,
    /// then the new hash, every session ended, the login throttle cleared
    /// and a "your password was changed" notice — in one store operation.
    pub async fn complete_password_reset(
        &self,
        token: &str,
        new_password: &str,
        locales: &[String],
    ) -> Result<Option<LinkState>, AuthError> {
        let state = self
            .link_state(token, &[LinkPurpose::ResetPassword])
            .await?;
        let LinkState::Valid { link, user } = state else {
            return Ok(Some(state));
        };
        let password = Password::parse("new_password", new_password, &user.username, &user.email)
            .map_err(|e| ValidationErrors(vec![e]))?;
        let password_hash = self.hasher().hash(&password).await?;
        let notice = self.notice(MailKind::PasswordChanged, &user, &user.email, None, locales)?;
        let change = AccountChange::ResetPassword { password_hash };
        let outcome = self.spend(&link, &change, Some(&notice)).await?;
        if outcome.is_none() {
            self.store()
                .clear_throttle(&account_throttle_key(user.id))
                .await?;
        }
        Ok(outcome)
    }

    /// Starts an email change for the signed-in `user`: the current
    /// password, a valid address no account has, within the resend limit;
    /// then a link to the *new* address. The account keeps its address
    /// until the link is confirmed.
    pub async fn request_email_change(
        &self,
        user: &User,
        current_password: &str,
        new_email: &str,
        locales: &[String],
    ) -> Result<(), AuthError> {
        self.verify_current_password(user, current_password).await?;
        let email = Email::parse(new_email).map_err(|e| ValidationErrors(vec![e]))?;
        let current_key = Email::parse(&user.email).map(|e| e.key().to_owned()).ok();
        if current_key.as_deref() == Some(email.key()) {
            return Err(ValidationErrors(vec![FieldError::new(
                "email",
                "is already the account's address",
            )])
            .into());
        }
        if self
            .store()
            .find_user_by_email(email.key())
            .await?
            .is_some()
        {
            return Err(AuthError::Conflict(UniqueField::Email));
        }
        self.admit(&change_key(user.id), &self.mailer()?.resend_limit)
            .await?;
        let (link, message) = self.link_and_message(
            LinkPurpose::ChangeEmail,
            MailKind::ConfirmEmailChange,
            user,
            email.as_str(),
            locales,
        )?;
        self.store().create_email_link(&link, &message).await?;
        Ok(())
    }

    /// Sets a new password for a signed-in user, ends every other session
    /// and queues the "your password was changed" notice, in one store
    /// operation. Shared by `POST /users/me/password` and the operator's
    /// `tessera user reset-password` (`keep: None`).
    pub(crate) async fn store_new_password(
        &self,
        user: &User,
        password_hash: &str,
        keep: Option<&Session>,
        locales: &[String],
    ) -> Result<u64, AuthError> {
        let notice = match self.mail() {
            Some(_) => {
                Some(self.notice(MailKind::PasswordChanged, user, &user.email, None, locales)?)
            }
            None => None,
        };
        self.store()
            .replace_password(
                user.id,
                password_hash,
                keep.map(|s| s.id),
                Utc::now(),
                notice.as_ref(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AuthError::UserNotFound,
                other => other.into(),
            })
    }
}
