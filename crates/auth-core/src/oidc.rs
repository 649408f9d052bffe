//! The OpenID Connect side of the service: `/userinfo` (Core §5.3),
//! `id_token_hint`, and RP-initiated logout (RP-Initiated Logout 1.0).

use chrono::Utc;
use uuid::Uuid;

use crate::client::Client;
use crate::error::AuthError;
use crate::flows::MAX_ECHOED_PARAM;
use crate::id_token::{scope_has, IdClaims, ProfileClaims};
use crate::model::User;
use crate::service::AuthService;
use crate::store::Store;

/// What `/userinfo` answers: `sub` and the claims of the granted scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    pub profile: ProfileClaims,
}

/// `/logout` parameters as received.
#[derive(Debug, Clone, Default)]
pub struct LogoutQuery {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// A checked logout request.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The hint's claims, when one was sent and this server signed it.
    pub hint: Option<IdClaims>,
    /// The client named by `client_id` or by the hint's audience.
    pub client: Option<Client>,
    /// Registered for `client`, compared by exact string.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

impl LogoutRequest {
    /// Where the browser goes once signed out: the registered URI with
    /// `state`, or `None` for Tessera's own "signed out" page.
    pub fn redirect_url(&self) -> Option<String> {
        let uri = self.post_logout_redirect_uri.as_deref()?;
        let Some(state) = &self.state else {
            return Some(uri.to_owned());
        };
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", state)
            .finish();
        let separator = if uri.contains('?') { '&' } else { '?' };
        Some(format!("{uri}{separator}{query}"))
    }

    /// Whether the browser may be signed out without asking: only with a
    /// hint this server signed, naming the person signed in (or nobody is),
    /// so a forged link cannot sign someone out (logout CSRF).
    pub fn is_confirmed_by_hint(&self, signed_in: Option<&User>) -> bool {
        match (&self.hint, signed_in) {
            (Some(hint), Some(user)) => hint.sub == user.id.to_string(),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Why a logout request was refused: shown as a page, never redirected.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error("The sign-out link carries an ID token this server did not issue.")]
    InvalidHint,
    #[error("The sign-out link names an application that is not registered.")]
    UnknownClient,
    #[error("The sign-out link's client_id does not match its ID token.")]
    ClientMismatch,
    #[error("The address to return to is not registered for this application.")]
    UnregisteredRedirect,
    #[error(
        "The sign-out link asks to return somewhere without saying which application it is from."
    )]
    RedirectWithoutClient,
    #[error("The sign-out link's state is too long.")]
    StateTooLong,
    #[error(transparent)]
    Failed(#[from] AuthError),
}

impl<S: Store> AuthService<S> {
    /// `/userinfo`: the person an access token stands for, if its session
    /// is active and it was granted `openid`.
    pub async fn userinfo(&self, access_token: &str) -> Result<UserInfo, AuthError> {
        let (session, user) = self.current_session(access_token).await?;
        if !scope_has(session.scope.as_deref(), "openid") {
            return Err(AuthError::InsufficientScope("openid"));
        }
        Ok(UserInfo {
            sub: user.id.to_string(),
            profile: ProfileClaims::of(&user, session.scope.as_deref()),
        })
    }

    /// The user an `id_token_hint` names, if this server signed it.
    pub fn id_token_hint_subject(&self, hint: &str) -> Option<Uuid> {
        let claims = self.id_tokens()?.verify_hint(hint).ok()?;
        Uuid::parse_str(&claims.sub).ok()
    }

    /// Checks a logout request (RP-Initiated Logout §2, §3): the hint must
    /// be one of ours; `post_logout_redirect_uri` must be registered, by
    /// exact string, for the client the request names.
    pub async fn check_logout(&self, query: &LogoutQuery) -> Result<LogoutRequest, LogoutError> {
        // Echoed back like /authorize's `state`, and bounded the same way.
        if query
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_ECHOED_PARAM)
        {
            return Err(LogoutError::StateTooLong);
        }
        let hint = match (&query.id_token_hint, self.id_tokens()) {
            (None, _) => None,
            (Some(token), Some(ids)) => Some(
                ids.verify_hint(token)
                    .map_err(|_| LogoutError::InvalidHint)?,
            ),
            (Some(_), None) => return Err(LogoutError::InvalidHint),
        };
        let client_id = match (&query.client_id, &hint) {
            (Some(id), Some(hint)) if *id != hint.aud => return Err(LogoutError::ClientMismatch),
            (Some(id), _) => Some(id.clone()),
            (None, Some(hint)) => Some(hint.aud.clone()),
            (None, None) => None,
        };
        let client = match client_id {
            Some(id) => Some(
                self.find_client(&id)
                    .await?
                    .map(|(client, _)| client)
                    .ok_or(LogoutError::UnknownClient)?,
            ),
            None => None,
        };
        let post_logout_redirect_uri = match (&query.post_logout_redirect_uri, &client) {
            (None, _) => None,
            (Some(_), None) => return Err(LogoutError::RedirectWithoutClient),
            (Some(uri), Some(client)) => {
                if !client.post_logout_redirect_uris.iter().any(|r| r == uri) {
                    return Err(LogoutError::UnregisteredRedirect);
                }
                Some(uri.clone())
            }
        };
        Ok(LogoutRequest {
            hint,
            client,
            post_logout_redirect_uri,
            state: query.state.clone(),
        })
    }

    /// Signs a browser out: its sign-in session (`browser_session`, the
    /// one its cookie names) ends, and so does every session it started —
    /// their refresh tokens stop working and their access tokens fail at
    /// once. A hint's `sid` names the sign-in the relying party saw, which
    /// ends too (the browser may have lost its cookie). Returns how many
    /// sessions were revoked.
    pub async fn sign_out(
        &self,
        browser_session: Option<Uuid>,
        hint: Option<&IdClaims>,
    ) -> Result<u64, AuthError> {
        let now = Utc::now();
        let hinted = hint
            .and_then(|h| h.sid.as_deref())
            .and_then(|s| Uuid::parse_str(s).ok())
            .filter(|sid| Some(*sid) != browser_session);
        let mut revoked = 0;
        for id in browser_session.into_iter().chain(hinted) {
            revoked += self.store().sign_out_browser(id, now).await?;
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_return_address_carries_state_encoded() {
        let request = LogoutRequest {
            hint: None,
            client: None,
            post_logout_redirect_uri: Some("https://app.example/bye?x=1".into()),
            state: Some("a b&c".into()),
        };
        assert_eq!(
            request.redirect_url().as_deref(),
            Some("https://app.example/bye?x=1&state=a+b%26c")
        );
        let without = LogoutRequest {
            state: None,
            post_logout_redirect_uri: Some("https://app.example/".into()),
            ..request
        };
        assert_eq!(
            without.redirect_url().as_deref(),
            Some("https://app.example/")
        );
    }
}
