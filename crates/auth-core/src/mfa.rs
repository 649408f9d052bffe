//! Multi-factor sign-in and the account page's use cases: the second step
//! after a password, enrolling an authenticator app, recovery codes,
//! removing factors, and listing and ending one's own sessions.
//!
//! Every failed code counts toward the same per-account throttle as a wrong
//! password, so a second factor cannot be guessed faster than a password.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::{Actor, Audited, Outcome};
use crate::authorize::{BrowserSession, Consent};
use crate::error::AuthError;
use crate::factors::{self, Ceremony, CeremonyKind, Factor, FactorKey, FactorKind, CEREMONY_TTL};
use crate::flows::BrowserSignIn;
use crate::id_token::{AMR_MFA, AMR_OTP, AMR_PASSWORD};
use crate::model::{Session, User};
use crate::refresh::OpaqueToken;
use crate::service::{account_throttle_key, chrono_duration, AuthService};
use crate::store::{Store, StoreError};
use crate::throttle::ThrottleState;
use crate::validation::{Password, ValidationErrors};

/// How long an authenticator app's setup may take before its secret is
/// forgotten (scanning, finding the phone, typing the first code).
const ENROLMENT_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// What second factors need from the configuration.
#[derive(Debug)]
pub struct FactorSettings {
    /// Seals TOTP secrets at rest.
    pub key: FactorKey,
    /// The issuer an authenticator app shows (`ui.product_name`).
    pub issuer_name: String,
    /// Passkeys (WebAuthn); `None` when the public URL cannot carry them.
    pub passkeys: Option<crate::passkeys::Passkeys>,
}

/// The result of a correct password.
#[derive(Debug)]
pub enum PasswordStep {
    /// No second factor: signed in.
    SignedIn(BrowserSignIn),
    /// A second factor is due; the browser keeps `token` (a cookie) until
    /// it is given.
    SecondFactor(SecondFactorDue),
}

/// A sign-in waiting for its second factor.
#[derive(Debug)]
pub struct SecondFactorDue {
    pub token: OpaqueToken,
    pub user: User,
}

/// What a pending second-factor step remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondFactorState {
    /// What the person proved so far (`pwd`).
    pub amr: Vec<String>,
    /// Where to continue afterwards (a pending authorization request id, or
    /// none for the account page).
    pub request: Option<Uuid>,
}

/// What the second-factor page offers.
#[derive(Debug, Clone)]
pub struct SecondFactorChoices {
    pub user: User,
    pub state: SecondFactorState,
    /// The account's factors (read once for the whole step).
    pub factors: Vec<Factor>,
    pub totp: bool,
    pub passkey: bool,
    pub recovery_codes: bool,
}

/// An authenticator app being set up.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// Names the setup in the confirming form.
    pub token: OpaqueToken,
    /// `otpauth://totp/...`, for the QR code.
    pub uri: String,
    /// The secret in base32, for typing in by hand.
    pub secret_base32: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EnrolmentState {
    sealed_secret: String,
}

/// Context that binds a sealed secret kept in an enrolment record.
const ENROLMENT_CONTEXT: &[u8] = b"tessera-totp-enrolment";

/// Everything the account page shows.
#[derive(Debug)]
pub struct AccountOverview {
    pub factors: Vec<Factor>,
    pub recovery_codes_left: u64,
    pub sessions: Vec<Session>,
    pub browser_sessions: Vec<BrowserSession>,
    /// Clients the person allowed, by client id; they can withdraw each.
    pub consents: Vec<Consent>,
    /// The display name of every client in `sessions` and `consents`, by
    /// client id (the id itself for a client deleted since).
    pub client_names: HashMap<String, String>,
}

/// Which of the person's sessions to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRef {
    /// An application's session (refresh tokens).
    Api(Uuid),
    /// A browser's sign-in session (and what it signed in to).
    Browser(Uuid),
}

impl<S: Store> AuthService<S> {
    pub(crate) fn factor_settings(&self) -> Result<&FactorSettings, AuthError> {
        self.factors()
            .ok_or_else(|| AuthError::Internal("second factors are not configured".into()))
    }

    /// Signs a browser in with a password (the same checks, throttling and
    /// timing as the password grant); with a second factor enrolled, the
    /// password only opens the second step. The one way pages sign in with
    /// a password, so none skips the second factor.
    pub async fn browser_password_step(
        &self,
        login: &str,
        password: &str,
        request: Option<Uuid>,
    ) -> Result<PasswordStep, AuthError> {
        let user = self.check_password(login, password).await?;
        if self.store().list_factors(user.id).await?.is_empty() {
            let amr = vec![AMR_PASSWORD.to_owned()];
            return Ok(PasswordStep::SignedIn(
                self.start_browser_session(user, amr).await?,
            ));
        }
        let state = SecondFactorState {
            amr: vec![AMR_PASSWORD.to_owned()],
            request,
        };
        let token = self
            .put_ceremony(
                CeremonyKind::SecondFactor,
                Some(user.id),
                &state,
                CEREMONY_TTL,
            )
            .await?;
        tracing::info!(user_id = %user.id, "password accepted; second factor due");
        Ok(PasswordStep::SecondFactor(SecondFactorDue { token, user }))
    }

    /// The second step a token names, with what it may be answered with;
    /// `None` when it expired or was finished.
    pub async fn second_factor_choices(
        &self,
        token: &str,
    ) -> Result<Option<SecondFactorChoices>, AuthError> {
        let Some((ceremony, state)) = self
            .find_ceremony::<SecondFactorState>(token, CeremonyKind::SecondFactor)
            .await?
        else {
            return Ok(None);
        };
        let Some(user_id) = ceremony.user_id else {
            return Ok(None);
        };
        let Some(user) = self.store().find_user_by_id(user_id).await? else {
            return Ok(None);
        };
        let factors = self.store().list_factors(user.id).await?;
        let recovery_codes = self.store().count_recovery_codes(user.id).await? > 0;
        Ok(Some(SecondFactorChoices {
            totp: factors.iter().any(|f| f.kind == FactorKind::Totp),
            passkey: self.passkeys().is_some()
                && factors.iter().any(|f| f.kind == FactorKind::Passkey),
            recovery_codes,
            user,
            state,
            factors,
        }))
    }

    /// Answers the second step with a code from the authenticator app or a
    /// recovery code; signs the browser in.
    pub async fn complete_second_factor(
        &self,
        token: &str,
        code: &str,
    ) -> Result<(BrowserSignIn, SecondFactorState), AuthError> {
        let Some(choices) = self.second_factor_choices(token).await? else {
            return Err(AuthError::CeremonyExpired);
        };
        let user = &choices.user;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        self.check_code(user, &choices.factors, code).await?;
        self.finish_second_factor(token, choices, AMR_OTP).await
    }

    /// Ends the second step once a factor was proven: the step is spent
    /// (once, even across replicas) and the browser signed in.
    pub(crate) async fn finish_second_factor(
        &self,
        token: &str,
        choices: SecondFactorChoices,
        method: &str,
    ) -> Result<(BrowserSignIn, SecondFactorState), AuthError> {
        let digest = OpaqueToken::from_presented(token).digest();
        if self
            .store()
            .take_ceremony(&digest, Utc::now())
            .await?
            .is_none()
        {
            return Err(AuthError::CeremonyExpired);
        }
        let mut amr = choices.state.amr.clone();
        for value in [method, AMR_MFA] {
            if !amr.iter().any(|a| a == value) {
                amr.push(value.to_owned());
            }
        }
        self.audit(
            Audited::new(
                Actor::User(choices.user.id),
                "sign_in.second_factor",
                Outcome::Success,
            )
            .on_user(choices.user.id),
        )
        .await;
        tracing::debug!(user_id = %choices.user.id, method, "second factor accepted");
        let signed_in = self.start_browser_session(choices.user, amr).await?;
        Ok((signed_in, choices.state))
    }

    /// Checks a TOTP or recovery code of `user` (a code counts once);
    /// failures count toward the account throttle.
    async fn check_code(
        &self,
        user: &User,
        factors: &[Factor],
        code: &str,
    ) -> Result<(), AuthError> {
        let key = account_throttle_key(user.id);
        let throttle = self.throttle_gate(&key).await?;
        let accepted = if factors::looks_like_recovery_code(code) {
            let digest = factors::recovery_code_digest(code);
            let used = self.store().use_recovery_code(user.id, &digest).await?;
            if used {
                self.audit(
                    Audited::new(Actor::User(user.id), "recovery_code.used", Outcome::Success)
                        .on_user(user.id),
                )
                .await;
            }
            used
        } else {
            self.accept_totp(factors, code, Utc::now()).await?
        };
        if !accepted {
            self.count_failure(&key).await?;
            self.audit(
                Audited::new(Actor::Anonymous, "sign_in.second_factor", Outcome::Failure)
                    .on_user(user.id),
            )
            .await;
            return Err(AuthError::InvalidCode);
        }
        if throttle.is_some() {
            self.store().clear_throttle(&key).await?;
        }
        Ok(())
    }

    /// Whether `code` is the user's app's code for a step not used before
    /// (and records the step).
    async fn accept_totp(
        &self,
        factors: &[Factor],
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthError> {
        let settings = self.factor_settings()?;
        let Some(app) = factors.iter().find(|f| f.kind == FactorKind::Totp) else {
            return Ok(false);
        };
        let Some(secret) = settings.key.open(app.id.as_bytes(), &app.data) else {
            tracing::error!(factor_id = %app.id, "a TOTP secret does not open with the configured key");
            return Ok(false);
        };
        let Some(step) = factors::totp_matching_step(&secret, code, now) else {
            return Ok(false);
        };
        Ok(self.store().advance_totp_step(app.id, step, now).await?)
    }

    /// Refuses while the account is locked; the state, for clearing later.
    pub(crate) async fn throttle_gate(
        &self,
        key: &str,
    ) -> Result<Option<ThrottleState>, AuthError> {
        let throttle = self.store().throttle_state(key).await?;
        if let Some(retry_after) = self
            .policy()
            .throttle
            .locked_for(throttle.as_ref(), Utc::now())
        {
            return Err(AuthError::Throttled { retry_after });
        }
        Ok(throttle)
    }

    pub(crate) async fn count_failure(&self, key: &str) -> Result<(), AuthError> {
        let policy = &self.policy().throttle;
        let now = Utc::now();
        self.store()
            .update_throttle(key, |state| policy.after_failure(state, now))
            .await?;
        Ok(())
    }

    /// Starts setting up an authenticator app: a new secret, kept sealed in
    /// the store until a first code confirms it.
    pub async fn start_totp_enrolment(&self, user: &User) -> Result<TotpEnrolment, AuthError> {
        let settings = self.factor_settings()?;
        let secret = factors::new_totp_secret();
        let uri = factors::otpauth_uri(&secret, &settings.issuer_name, &user.username)
            .ok_or_else(|| AuthError::Internal("cannot build an otpauth URI".into()))?;
        let state = EnrolmentState {
            sealed_secret: settings.key.seal(ENROLMENT_CONTEXT, &secret),
        };
        let token = self
            .put_ceremony(
                CeremonyKind::TotpEnrolment,
                Some(user.id),
                &state,
                ENROLMENT_TTL,
            )
            .await?;
        Ok(TotpEnrolment {
            token,
            uri,
            secret_base32: factors::totp_secret_base32(&secret),
        })
    }

    /// Confirms an app with its first code (which counts as used). Returns
    /// new recovery codes when the account had none (shown once).
    pub async fn confirm_totp_enrolment(
        &self,
        user: &User,
        token: &str,
        code: &str,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let settings = self.factor_settings()?;
        let Some((ceremony, state)) = self
            .find_ceremony::<EnrolmentState>(token, CeremonyKind::TotpEnrolment)
            .await?
        else {
            return Err(AuthError::CeremonyExpired);
        };
        if ceremony.user_id != Some(user.id) {
            return Err(AuthError::CeremonyExpired);
        }
        let secret = settings
            .key
            .open(ENROLMENT_CONTEXT, &state.sealed_secret)
            .ok_or(AuthError::CeremonyExpired)?;
        let key = account_throttle_key(user.id);
        self.throttle_gate(&key).await?;
        let now = Utc::now();
        let Some(step) = factors::totp_matching_step(&secret, code, now) else {
            self.count_failure(&key).await?;
            return Err(AuthError::InvalidCode);
        };
        if self
            .store()
            .take_ceremony(&ceremony.digest, now)
            .await?
            .is_none()
        {
            return Err(AuthError::CeremonyExpired);
        }
        let id = Uuid::now_v7();
        let factor = Factor {
            id,
            user_id: user.id,
            kind: FactorKind::Totp,
            name: "Authenticator app".into(),
            data: settings.key.seal(id.as_bytes(), &secret),
            credential_id: None,
            last_step: step,
            created_at: now,
            last_used_at: Some(now),
        };
        self.store().add_factor(&factor).await?;
        self.audit(
            Audited::new(Actor::User(user.id), "factor.added", Outcome::Success).on_user(user.id),
        )
        .await;
        tracing::debug!(user_id = %user.id, factor_id = %id, kind = "totp", "factor added");
        self.first_recovery_codes(user).await
    }

    /// Recovery codes for an account that just got its first factor.
    pub(crate) async fn first_recovery_codes(
        &self,
        user: &User,
    ) -> Result<Option<Vec<String>>, AuthError> {
        if self.store().count_recovery_codes(user.id).await? > 0 {
            return Ok(None);
        }
        self.regenerate_recovery_codes(user).await.map(Some)
    }

    /// A new set of recovery codes (the old ones stop working), shown once.
    pub async fn regenerate_recovery_codes(&self, user: &User) -> Result<Vec<String>, AuthError> {
        if self.store().list_factors(user.id).await?.is_empty() {
            return Err(AuthError::NoSecondFactor);
        }
        let (codes, digests) = factors::new_recovery_codes();
        self.store()
            .replace_recovery_codes(user.id, &digests, Utc::now())
            .await?;
        self.audit(
            Audited::new(
                Actor::User(user.id),
                "recovery_codes.generated",
                Outcome::Success,
            )
            .on_user(user.id),
        )
        .await;
        Ok(codes)
    }

    /// Removes one of the person's factors.
    pub async fn remove_factor(&self, user: &User, factor_id: Uuid) -> Result<(), AuthError> {
        if !self.store().remove_factor(user.id, factor_id).await? {
            return Err(AuthError::FactorNotFound);
        }
        self.audit(
            Audited::new(Actor::User(user.id), "factor.removed", Outcome::Success).on_user(user.id),
        )
        .await;
        tracing::debug!(user_id = %user.id, factor_id = %factor_id, "factor removed");
        Ok(())
    }

    /// What the account page shows.
    pub async fn account_overview(&self, user: &User) -> Result<AccountOverview, AuthError> {
        let store = self.store();
        let factors = store.list_factors(user.id).await?;
        let recovery_codes_left = store.count_recovery_codes(user.id).await?;
        let (sessions, browser_sessions) = store.list_user_sessions(user.id, Utc::now()).await?;
        let consents = store.list_consents(user.id).await?;
        let mut client_names = HashMap::new();
        let client_ids = sessions.iter().map(|s| &s.client_id);
        for id in client_ids.chain(consents.iter().map(|c| &c.client_id)) {
            if !client_names.contains_key(id) {
                client_names.insert(id.clone(), self.client_name(id).await?);
            }
        }
        Ok(AccountOverview {
            factors,
            recovery_codes_left,
            sessions,
            browser_sessions,
            consents,
            client_names,
        })
    }

    /// Ends one of the person's own sessions (another person's id is
    /// "not found", never ended).
    pub async fn end_own_session(&self, user: &User, which: SessionRef) -> Result<(), AuthError> {
        let now = Utc::now();
        let (sessions, browsers) = self.store().list_user_sessions(user.id, now).await?;
        match which {
            SessionRef::Api(id) if sessions.iter().any(|s| s.id == id) => {
                self.store().revoke_session(id, now).await?;
            }
            SessionRef::Browser(id) if browsers.iter().any(|b| b.id == id) => {
                self.store().sign_out_browser(id, now).await?;
            }
            _ => return Err(AuthError::SessionNotFound),
        }
        self.audit(
            Audited::new(Actor::User(user.id), "session.revoked", Outcome::Success)
                .on_user(user.id),
        )
        .await;
        tracing::debug!(user_id = %user.id, session = ?which, "session ended by its owner");
        Ok(())
    }

    /// Changes the password from the account page: every session ends (the
    /// browser's too) and the browser gets a fresh one, so whoever held a
    /// copy of the old cookie is out.
    pub async fn change_password_in_browser(
        &self,
        session: &BrowserSession,
        user: &User,
        current_password: &str,
        new_password: &str,
        locales: &[String],
    ) -> Result<BrowserSignIn, AuthError> {
        let hash = self
            .new_password_hash(user, current_password, new_password)
            .await?;
        self.store_new_password(user, &hash, None, locales).await?;
        self.audit(
            Audited::new(Actor::User(user.id), "password.changed", Outcome::Success)
                .on_user(user.id),
        )
        .await;
        self.start_browser_session(user.clone(), session.amr.clone())
            .await
    }

    /// Checks the current password and the new one's rules; the new hash.
    pub(crate) async fn new_password_hash(
        &self,
        user: &User,
        current_password: &str,
        new_password: &str,
    ) -> Result<String, AuthError> {
        self.verify_current_password(user, current_password).await?;
        let password = Password::parse("new_password", new_password, &user.username, &user.email)
            .map_err(|e| ValidationErrors(vec![e]))?;
        self.hasher().hash(&password).await
    }

    /// The person's own password, asked again before a change to the
    /// account (`InvalidCredentials` when wrong; not throttled: the person
    /// is signed in already).
    pub(crate) async fn verify_current_password(
        &self,
        user: &User,
        current_password: &str,
    ) -> Result<(), AuthError> {
        let verification = self
            .hasher()
            .verify(Some(&user.password_hash), current_password)
            .await?;
        if !verification.matches {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(())
    }

    /// `tessera user reset-factors` and `POST /admin/v1/users/{id}/reset-factors`:
    /// every factor and recovery code goes and every session ends (a lost
    /// phone, a stolen key). Returns how many factors were removed.
    pub async fn reset_factors(&self, actor: &Actor, user: &User) -> Result<u64, AuthError> {
        let removed = self
            .store()
            .reset_factors(user.id, Utc::now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AuthError::UserNotFound,
                other => other.into(),
            })?;
        self.audit(Audited::new(actor.clone(), "factors.reset", Outcome::Success).on_user(user.id))
            .await;
        Ok(removed)
    }

    /// Whether the account has a second factor (the password grant refuses
    /// such accounts: no token path may skip the second factor).
    pub(crate) async fn has_second_factor(&self, user: &User) -> Result<bool, AuthError> {
        Ok(!self.store().list_factors(user.id).await?.is_empty())
    }

    /// Stores a ceremony record; the token that names it.
    pub(crate) async fn put_ceremony<T: Serialize>(
        &self,
        kind: CeremonyKind,
        user_id: Option<Uuid>,
        state: &T,
        ttl: std::time::Duration,
    ) -> Result<OpaqueToken, AuthError> {
        let token = OpaqueToken::generate();
        let ceremony = Ceremony {
            digest: token.digest(),
            kind,
            user_id,
            data: crate::store::to_stored_json(state)?,
            expires_at: Utc::now() + chrono_duration(ttl),
        };
        self.store().put_ceremony(&ceremony).await?;
        Ok(token)
    }

    /// The unexpired ceremony of `kind` a token names, with its state.
    pub(crate) async fn find_ceremony<T: for<'de> Deserialize<'de>>(
        &self,
        token: &str,
        kind: CeremonyKind,
    ) -> Result<Option<(Ceremony, T)>, AuthError> {
        let digest = OpaqueToken::from_presented(token).digest();
        let Some(ceremony) = self.store().find_ceremony(&digest, Utc::now()).await? else {
            return Ok(None);
        };
        if ceremony.kind != kind {
            return Ok(None);
        }
        let state = crate::store::from_stored_json(&ceremony.data)?;
        Ok(Some((ceremony, state)))
    }
}
