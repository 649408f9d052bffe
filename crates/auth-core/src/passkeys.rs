//! Passkeys (WebAuthn, through `webauthn-rs`): registering several per
//! account, signing in with one alone (a discoverable credential with user
//! verification: no username typed), and using one as the second factor
//! after a password.
//!
//! Each ceremony's server state is kept in the store (a ceremony record
//! taken once), so one replica may show the challenge and another check
//! the answer; a replayed or expired answer finds nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use crate::audit::{Actor, Audited, Outcome};
use crate::error::AuthError;
use crate::factors::{CeremonyKind, Factor, FactorKind, CEREMONY_TTL};
use crate::flows::BrowserSignIn;
use crate::id_token::{AMR_HWK, AMR_MFA, AMR_USER};
use crate::mfa::SecondFactorState;
use crate::model::User;
use crate::refresh::OpaqueToken;
use crate::service::AuthService;
use crate::store::Store;

/// The relying party: the domain passkeys are bound to and the origins
/// allowed to use them.
#[derive(Debug)]
pub struct Passkeys {
    webauthn: Webauthn,
}

/// Why passkeys cannot be offered for a public URL.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyConfigError {
    #[error("server.public_url `{0}` is not a URL")]
    NotAUrl(String),
    #[error(
        "server.public_url `{0}` names an IP address; passkeys need a domain name \
         (or `localhost`), so they are switched off"
    )]
    IpAddress(String),
    #[error("passkeys cannot use `{url}`: {reason}")]
    Refused { url: String, reason: String },
}

impl Passkeys {
    /// The relying party for `public_url`: its host is the RP ID and its
    /// origin the one origin allowed.
    pub fn new(public_url: &str, rp_name: &str) -> Result<Self, PasskeyConfigError> {
        let url =
            Url::parse(public_url).map_err(|_| PasskeyConfigError::NotAUrl(public_url.into()))?;
        let host = match url.host() {
            Some(url::Host::Domain(domain)) => domain.to_owned(),
            Some(_) => return Err(PasskeyConfigError::IpAddress(public_url.into())),
            None => return Err(PasskeyConfigError::NotAUrl(public_url.into())),
        };
        let refused = |e: webauthn_rs::prelude::WebauthnError| PasskeyConfigError::Refused {
            url: public_url.into(),
            reason: e.to_string(),
        };
        let webauthn = WebauthnBuilder::new(&host, &url)
            .map_err(refused)?
            .rp_name(rp_name)
            .build()
            .map_err(refused)?;
        Ok(Self { webauthn })
    }
}

/// Options for the browser (`navigator.credentials.create/get`) and the
/// token naming the ceremony they belong to.
#[derive(Debug)]
pub struct PasskeyChallenge {
    pub token: OpaqueToken,
    /// `{"publicKey": {...}}` as WebAuthn's JSON serialisation.
    pub options: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct RegistrationState {
    state: PasskeyRegistration,
}

#[derive(Serialize, Deserialize)]
enum AuthenticationState {
    /// Sign-in without a username.
    Discoverable(DiscoverableAuthentication),
    /// The second step after a password.
    SecondFactor(PasskeyAuthentication),
}

fn refused(why: impl std::fmt::Display) -> AuthError {
    AuthError::PasskeyRefused(why.to_string())
}

fn credential_id_text(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

fn stored_passkey(factor: &Factor) -> Result<Passkey, AuthError> {
    serde_json::from_str(&factor.data)
        .map_err(|e| AuthError::Internal(format!("stored passkey unreadable: {e}")))
}

/// Longest passkey name kept.
const MAX_PASSKEY_NAME: usize = 64;

impl<S: Store> AuthService<S> {
    pub(crate) fn passkeys(&self) -> Option<&Passkeys> {
        self.factors().and_then(|f| f.passkeys.as_ref())
    }

    fn require_passkeys(&self) -> Result<&Passkeys, AuthError> {
        self.passkeys().ok_or(AuthError::PasskeysUnavailable)
    }

    /// Whether passkeys are offered (the public URL names a domain).
    pub fn passkeys_enabled(&self) -> bool {
        self.passkeys().is_some()
    }

    /// Starts registering a passkey for `user`: a discoverable credential
    /// with user verification, none of the user's existing ones again.
    pub async fn start_passkey_registration(
        &self,
        user: &User,
    ) -> Result<PasskeyChallenge, AuthError> {
        let passkeys = self.require_passkeys()?;
        let existing: Vec<_> = self
            .store()
            .list_factors(user.id)
            .await?
            .iter()
            .filter(|f| f.kind == FactorKind::Passkey)
            .filter_map(|f| stored_passkey(f).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (mut options, state) = passkeys
            .webauthn
            .start_passkey_registration(user.id, &user.username, &user.username, Some(existing))
            .map_err(refused)?;
        // Discoverable: the passkey itself names the account at sign-in.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let token = self
            .put_ceremony(
                CeremonyKind::PasskeyRegistration,
                Some(user.id),
                &RegistrationState { state },
                CEREMONY_TTL,
            )
            .await?;
        Ok(PasskeyChallenge {
            token,
            options: serde_json::to_value(&options).map_err(refused)?,
        })
    }

    /// Finishes a registration with the browser's answer (JSON). Returns new
    /// recovery codes when this is the account's first factor.
    pub async fn finish_passkey_registration(
        &self,
        user: &User,
        token: &str,
        name: &str,
        credential_json: &str,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let passkeys = self.require_passkeys()?;
        let digest = OpaqueToken::from_presented(token).digest();
        let now = Utc::now();
        let ceremony = self
            .store()
            .take_ceremony(&digest, now)
            .await?
            .filter(|c| c.kind == CeremonyKind::PasskeyRegistration && c.user_id == Some(user.id))
            .ok_or(AuthError::CeremonyExpired)?;
        let RegistrationState { state } = crate::store::from_stored_json(&ceremony.data)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_str(credential_json).map_err(refused)?;
        let passkey = passkeys
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(refused)?;
        let name = name.trim();
        let name = if name.is_empty() {
            "Passkey".to_owned()
        } else {
            name.chars().take(MAX_PASSKEY_NAME).collect()
        };
        let factor = Factor {
            id: Uuid::now_v7(),
            user_id: user.id,
            kind: FactorKind::Passkey,
            name,
            data: serde_json::to_string(&passkey).map_err(refused)?,
            credential_id: Some(credential_id_text(passkey.cred_id().as_ref())),
            last_step: 0,
            created_at: now,
            last_used_at: None,
        };
        self.store().add_factor(&factor).await?;
        self.audit(
            Audited::new(Actor::User(user.id), "factor.added", Outcome::Success).on_user(user.id),
        )
        .await;
        tracing::debug!(user_id = %user.id, factor_id = %factor.id, kind = "passkey", "factor added");
        self.first_recovery_codes(user).await
    }

    /// Starts a sign-in with a passkey alone (no username).
    pub async fn start_passkey_sign_in(&self) -> Result<PasskeyChallenge, AuthError> {
        let passkeys = self.require_passkeys()?;
        let (mut options, state) = passkeys
            .webauthn
            .start_discoverable_authentication()
            .map_err(refused)?;
        // Started by a button, not by the username field's autofill.
        options.mediation = None;
        let token = self
            .put_ceremony(
                CeremonyKind::PasskeyAuthentication,
                None,
                &AuthenticationState::Discoverable(state),
                CEREMONY_TTL,
            )
            .await?;
        Ok(PasskeyChallenge {
            token,
            options: serde_json::to_value(&options).map_err(refused)?,
        })
    }

    /// Finishes a passkey sign-in: the credential names the account, and
    /// user verification must have happened (it is both factors at once).
    pub async fn finish_passkey_sign_in(
        &self,
        token: &str,
        credential_json: &str,
    ) -> Result<BrowserSignIn, AuthError> {
        let passkeys = self.require_passkeys()?;
        let state = match self.take_authentication(token, None).await? {
            AuthenticationState::Discoverable(state) => state,
            AuthenticationState::SecondFactor(_) => return Err(AuthError::CeremonyExpired),
        };
        let credential: PublicKeyCredential =
            serde_json::from_str(credential_json).map_err(refused)?;
        let (user_id, credential_id) = passkeys
            .webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(refused)?;
        let factor = self
            .store()
            .find_passkey(&credential_id_text(credential_id))
            .await?
            .filter(|f| f.user_id == user_id)
            .ok_or_else(|| refused("this passkey is not registered here"))?;
        let mut passkey = stored_passkey(&factor)?;
        let result = passkeys
            .webauthn
            .finish_discoverable_authentication_v2(&credential, state, &passkey)
            .map_err(refused)?;
        if !result.user_verified() {
            return Err(refused("the authenticator did not verify the user"));
        }
        let user = self
            .store()
            .find_user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        passkey.update_credential(&result);
        self.record_passkey(&factor, &passkey).await?;
        self.audit(
            Audited::new(Actor::User(user.id), "sign_in.passkey", Outcome::Success)
                .on_user(user.id),
        )
        .await;
        let amr = [AMR_HWK, AMR_USER, AMR_MFA].map(str::to_owned).to_vec();
        self.start_browser_session(user, amr).await
    }

    /// The challenge for the second step after a password, for the user's
    /// passkeys.
    pub async fn start_second_factor_passkey(
        &self,
        second_factor_token: &str,
    ) -> Result<PasskeyChallenge, AuthError> {
        let passkeys = self.require_passkeys()?;
        let choices = self
            .second_factor_choices(second_factor_token)
            .await?
            .ok_or(AuthError::CeremonyExpired)?;
        let keys: Vec<Passkey> = choices
            .factors
            .iter()
            .filter(|f| f.kind == FactorKind::Passkey)
            .filter_map(|f| stored_passkey(f).ok())
            .collect();
        if keys.is_empty() {
            return Err(AuthError::NoSecondFactor);
        }
        let (options, state) = passkeys
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(refused)?;
        let token = self
            .put_ceremony(
                CeremonyKind::PasskeyAuthentication,
                Some(choices.user.id),
                &AuthenticationState::SecondFactor(state),
                CEREMONY_TTL,
            )
            .await?;
        Ok(PasskeyChallenge {
            token,
            options: serde_json::to_value(&options).map_err(refused)?,
        })
    }

    /// Answers the second step with a passkey; signs the browser in.
    pub async fn complete_second_factor_with_passkey(
        &self,
        second_factor_token: &str,
        passkey_token: &str,
        credential_json: &str,
    ) -> Result<(BrowserSignIn, SecondFactorState), AuthError> {
        let passkeys = self.require_passkeys()?;
        let choices = self
            .second_factor_choices(second_factor_token)
            .await?
            .ok_or(AuthError::CeremonyExpired)?;
        let state = match self
            .take_authentication(passkey_token, Some(choices.user.id))
            .await?
        {
            AuthenticationState::SecondFactor(state) => state,
            AuthenticationState::Discoverable(_) => return Err(AuthError::CeremonyExpired),
        };
        let credential: PublicKeyCredential =
            serde_json::from_str(credential_json).map_err(refused)?;
        let result = passkeys
            .webauthn
            .finish_passkey_authentication(&credential, &state)
            .map_err(refused)?;
        let factor = self
            .store()
            .find_passkey(&credential_id_text(result.cred_id().as_ref()))
            .await?
            .filter(|f| f.user_id == choices.user.id)
            .ok_or_else(|| refused("this passkey is not registered to this account"))?;
        let mut passkey = stored_passkey(&factor)?;
        passkey.update_credential(&result);
        self.record_passkey(&factor, &passkey).await?;
        self.finish_second_factor(second_factor_token, choices, AMR_HWK)
            .await
    }

    async fn take_authentication(
        &self,
        token: &str,
        user_id: Option<Uuid>,
    ) -> Result<AuthenticationState, AuthError> {
        let digest = OpaqueToken::from_presented(token).digest();
        let ceremony = self
            .store()
            .take_ceremony(&digest, Utc::now())
            .await?
            .filter(|c| c.kind == CeremonyKind::PasskeyAuthentication && c.user_id == user_id)
            .ok_or(AuthError::CeremonyExpired)?;
        Ok(crate::store::from_stored_json(&ceremony.data)?)
    }

    async fn record_passkey(&self, factor: &Factor, passkey: &Passkey) -> Result<(), AuthError> {
        let data = serde_json::to_string(passkey).map_err(refused)?;
        if !self
            .store()
            .record_passkey_use(factor.id, &data, Utc::now())
            .await?
        {
            return Err(refused("this passkey was removed"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkeys_need_a_domain_name() {
        assert!(Passkeys::new("http://localhost:8080", "Tessera").is_ok());
        assert!(Passkeys::new("https://id.example.org", "Tessera").is_ok());
        let ip = Passkeys::new("http://127.0.0.1:8080", "Tessera");
        assert!(
            matches!(ip, Err(PasskeyConfigError::IpAddress(_))),
            "{ip:?}"
        );
        let message = ip.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("domain name"), "{message}");
        assert!(matches!(
            Passkeys::new("http://[::1]:8080", "Tessera"),
            Err(PasskeyConfigError::IpAddress(_))
        ));
        assert!(Passkeys::new("not a url", "Tessera").is_err());
    }
}
