//! The browser side of the authorization-code flow: checking an
//! `/authorize` request, deciding what the person must do next (sign in,
//! consent, nothing), browser sign-in sessions, and issuing the code.
//!
//! The pages in `auth-server` only render what these functions decide.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{Actor, Audited, Outcome};
use crate::authorize::{
    is_s256_challenge, scope_covers, scope_union, AuthorizationCode, AuthorizationParams,
    BrowserSession, CodeGrant, PendingAuthorization, Prompt,
};
use crate::client::{Client, GrantType};
use crate::error::AuthError;
use crate::model::User;
use crate::refresh::OpaqueToken;
use crate::service::{chrono_duration, AuthService, Registration};
use crate::store::Store;

/// Pending requests this process kept or read, so that *showing* a page
/// needs no store round trip (the sign-in page is the most visited page of
/// all). Pending requests never change once stored, so a copy is exact; one
/// answered on another replica may still be shown from here, but every form
/// *submission* reads the store, which is what decides.
#[derive(Debug, Default)]
pub struct PendingCache {
    entries: Mutex<HashMap<Uuid, PendingAuthorization>>,
}

/// Most pending requests a process keeps copies of (about 1 KiB each).
const PENDING_CACHE_CAPACITY: usize = 10_000;

impl PendingCache {
    fn get(&self, id: Uuid, now: DateTime<Utc>) -> Option<PendingAuthorization> {
        let entries = self.entries.lock().ok()?;
        entries.get(&id).filter(|p| p.expires_at > now).cloned()
    }

    fn put(&self, pending: &PendingAuthorization, now: DateTime<Utc>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= PENDING_CACHE_CAPACITY {
            entries.retain(|_, p| p.expires_at > now);
            if entries.len() >= PENDING_CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(pending.id, pending.clone());
    }

    fn remove(&self, id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&id);
        }
    }
}

/// Longest `state`, `nonce` or `login_hint` kept (they are stored and echoed).
pub(crate) const MAX_ECHOED_PARAM: usize = 2048;

/// `/authorize` parameters as received (query or form), before any check.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationQuery {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub id_token_hint: Option<String>,
    /// OpenID Connect `ui_locales`: the languages the person prefers.
    pub ui_locales: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    /// Parameters that appeared more than once (RFC 6749 §3.1 forbids it).
    pub repeated: Vec<String>,
}

/// The `error` values an authorization response may carry (RFC 6749
/// §4.1.2.1, OpenID Connect Core §3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    LoginRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
}

impl AuthorizeErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

/// Where the browser goes back to the client, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRedirect {
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The code, or the error and its description.
    pub outcome: Result<String, (AuthorizeErrorCode, String)>,
}

impl ClientRedirect {
    fn error(params: &AuthorizationParams, code: AuthorizeErrorCode, why: &str) -> Self {
        Self {
            redirect_uri: params.redirect_uri.clone(),
            state: params.state.clone(),
            outcome: Err((code, why.to_owned())),
        }
    }
}

/// Why an authorization request was refused.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or its redirect URI is not known: shown as a page and
    /// never redirected (RFC 9700 §4.11: no open redirector).
    Unredirectable(String),
    /// Everything else goes back to the client.
    Redirect(ClientRedirect),
    /// The store failed.
    Failed(AuthError),
}

impl From<AuthError> for AuthorizeError {
    fn from(err: AuthError) -> Self {
        AuthorizeError::Failed(err)
    }
}

/// What the person must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    SignIn,
    CreateAccount,
    Consent,
    /// Back to the client, with a code or an error.
    Return(ClientRedirect),
}

/// What the person has just done inside this flow, so a `prompt=login` or
/// `prompt=consent` is not asked twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub signed_in: bool,
    pub consented: bool,
}

/// A browser sign-in session as the cookie carries it.
#[derive(Debug, Clone)]
pub struct BrowserSignIn {
    /// The cookie's value; shown once, to the browser.
    pub cookie: OpaqueToken,
    pub session: BrowserSession,
    pub user: User,
}

impl<S: Store> AuthService<S> {
    /// Checks an authorization request, in the order RFC 6749 §4.1.2.1
    /// requires: the client and redirect URI first (failures there are
    /// never redirected), then everything else (failures go back to the
    /// client with `error`).
    pub async fn check_authorization(
        &self,
        query: &AuthorizationQuery,
    ) -> Result<(AuthorizationParams, Client), AuthorizeError> {
        let repeated = |name: &str| query.repeated.iter().any(|r| r == name);
        let unredirectable = |why: &str| Err(AuthorizeError::Unredirectable(why.to_owned()));
        if repeated("client_id") || repeated("redirect_uri") {
            return unredirectable("client_id and redirect_uri may appear only once.");
        }
        let Some(client_id) = query.client_id.as_deref() else {
            return unredirectable("The request does not name an application (client_id).");
        };
        let Some((client, _)) = self.find_client(client_id).await? else {
            return unredirectable("The application that sent you here is not registered.");
        };
        let Some(redirect_uri) = client.redirect_uri_for(query.redirect_uri.as_deref()) else {
            return unredirectable(if query.redirect_uri.is_some() {
                "The address to return to is not registered for this application."
            } else {
                "The request does not say where to return to (redirect_uri)."
            });
        };
        let state = query.state.clone();
        let fail = |code: AuthorizeErrorCode, why: &str| {
            Err(AuthorizeError::Redirect(ClientRedirect {
                redirect_uri: redirect_uri.clone(),
                state: state.clone(),
                outcome: Err((code, why.to_owned())),
            }))
        };
        use AuthorizeErrorCode as E;
        if let Some(name) = query.repeated.first() {
            return fail(E::InvalidRequest, &format!("{name} appears more than once"));
        }
        if query.request.is_some() {
            return fail(E::RequestNotSupported, "request objects are not supported");
        }
        if query.request_uri.is_some() {
            return fail(E::RequestUriNotSupported, "request_uri is not supported");
        }
        let too_long = [&query.state, &query.nonce, &query.login_hint]
            .into_iter()
            .any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_ECHOED_PARAM));
        if too_long {
            return fail(E::InvalidRequest, "state, nonce or login_hint is too long");
        }
        match query.response_type.as_deref() {
            None => return fail(E::InvalidRequest, "response_type is required"),
            Some("code") => {}
            Some(_) => {
                return fail(
                    E::UnsupportedResponseType,
                    "only response_type=code is supported",
                )
            }
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return fail(
                E::UnauthorizedClient,
                "this client may not use the authorization code grant",
            );
        }
        let Some(code_challenge) = query.code_challenge.clone() else {
            return fail(E::InvalidRequest, "code_challenge is required (PKCE)");
        };
        if query.code_challenge_method.as_deref() != Some("S256") {
            return fail(E::InvalidRequest, "code_challenge_method must be S256");
        }
        if !is_s256_challenge(&code_challenge) {
            return fail(E::InvalidRequest, "code_challenge is not an S256 challenge");
        }
        let scope = match client.granted_scope(query.scope.as_deref()) {
            Ok(scope) => scope,
            Err(refused) => {
                return fail(
                    E::InvalidScope,
                    &format!("the scope `{refused}` is not allowed for this client"),
                )
            }
        };
        let Some(prompt) = parse_prompt(query.prompt.as_deref()) else {
            return fail(
                E::InvalidRequest,
                "prompt has an unknown value, or none with others",
            );
        };
        let max_age = match query.max_age.as_deref().map(str::parse::<u64>) {
            None => None,
            Some(Ok(seconds)) => Some(seconds),
            Some(Err(_)) => {
                return fail(
                    E::InvalidRequest,
                    "max_age must be a whole number of seconds",
                )
            }
        };
        let hinted_user = match query.id_token_hint.as_deref() {
            None => None,
            Some(hint) => match self.id_token_hint_subject(hint) {
                Some(user_id) => Some(user_id),
                None => {
                    return fail(
                        E::InvalidRequest,
                        "id_token_hint is not an ID token issued by this server",
                    )
                }
            },
        };
        let params = AuthorizationParams {
            client_id: client.id.clone(),
            redirect_uri,
            scope,
            state,
            code_challenge,
            nonce: query.nonce.clone(),
            prompt,
            max_age,
            login_hint: query.login_hint.clone(),
            hinted_user,
            // A hint (Core §3.1.2.1): an unreasonable one is dropped, not refused.
            ui_locales: query.ui_locales.clone().filter(|v| v.len() <= 256),
        };
        Ok((params, client))
    }

    /// What happens next for a checked request, given the browser's
    /// sign-in session (if any) and what the person did in this flow. When
    /// nothing is left to ask, the code is issued here.
    pub async fn next_step(
        &self,
        params: &AuthorizationParams,
        client: &Client,
        browser: Option<&(BrowserSession, User)>,
        progress: Progress,
    ) -> Result<Step, AuthError> {
        let now = Utc::now();
        let signed_in = browser.filter(|(session, user)| {
            !user.disabled
                && (progress.signed_in
                    || (!params.prompts(Prompt::Login)
                        && params.sign_in_is_fresh(session.auth_time, now)
                        && params.hinted_user.is_none_or(|id| id == user.id)))
        });
        let Some((session, user)) = signed_in else {
            return Ok(if params.prompts(Prompt::None) {
                Step::Return(ClientRedirect::error(
                    params,
                    AuthorizeErrorCode::LoginRequired,
                    "the person is not signed in",
                ))
            } else if params.prompts(Prompt::Create) {
                Step::CreateAccount
            } else {
                Step::SignIn
            });
        };
        if !client.first_party && !progress.consented {
            let remembered = self.store().find_consent(user.id, &client.id).await?;
            let covered = remembered.is_some_and(|s| scope_covers(&s, params.scope.as_deref()));
            if !covered || params.prompts(Prompt::Consent) {
                return Ok(if params.prompts(Prompt::None) {
                    Step::Return(ClientRedirect::error(
                        params,
                        AuthorizeErrorCode::ConsentRequired,
                        "the person has not allowed this application",
                    ))
                } else {
                    Step::Consent
                });
            }
        }
        let code = self.issue_code(params, user, session, now).await?;
        Ok(Step::Return(ClientRedirect {
            redirect_uri: params.redirect_uri.clone(),
            state: params.state.clone(),
            outcome: Ok(code),
        }))
    }

    /// Stores a code bound to everything the token request must match.
    async fn issue_code(
        &self,
        params: &AuthorizationParams,
        user: &User,
        session: &BrowserSession,
        now: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        let code = OpaqueToken::generate();
        let record = AuthorizationCode {
            digest: code.digest(),
            client_id: params.client_id.clone(),
            // Chosen now, so a second presentation knows what to revoke.
            session_id: Uuid::now_v7(),
            grant: CodeGrant {
                redirect_uri: params.redirect_uri.clone(),
                user_id: user.id,
                scope: params.scope.clone(),
                code_challenge: params.code_challenge.clone(),
                nonce: params.nonce.clone(),
                auth_time: session.auth_time,
                browser_session_id: Some(session.id),
                amr: session.amr.clone(),
            },
            created_at: now,
            expires_at: now + chrono_duration(self.policy().oauth.code_ttl),
        };
        self.store().insert_authorization_code(&record).await?;
        Ok(code.expose().to_owned())
    }

    /// Keeps a request while the person signs in or consents.
    pub async fn save_pending(
        &self,
        params: AuthorizationParams,
    ) -> Result<PendingAuthorization, AuthError> {
        let now = Utc::now();
        let pending = PendingAuthorization {
            id: Uuid::new_v4(),
            params,
            created_at: now,
            expires_at: now + chrono_duration(self.policy().oauth.request_ttl),
        };
        self.store().insert_authorization_request(&pending).await?;
        self.pending_pages().put(&pending, now);
        Ok(pending)
    }

    /// A pending request that has not expired, with its client (which may
    /// have been deleted since: then `None`), as the store has it: what a
    /// form submission acts on.
    pub async fn pending(
        &self,
        id: Uuid,
    ) -> Result<Option<(PendingAuthorization, Client)>, AuthError> {
        let now = Utc::now();
        let Some(pending) = self.store().find_authorization_request(id, now).await? else {
            self.pending_pages().remove(id);
            return Ok(None);
        };
        self.pending_pages().put(&pending, now);
        self.with_client(pending).await
    }

    /// Like [`pending`](Self::pending), but from this process's copy when
    /// it has one: for *showing* a page, never for acting on a form.
    pub async fn pending_for_page(
        &self,
        id: Uuid,
    ) -> Result<Option<(PendingAuthorization, Client)>, AuthError> {
        match self.pending_pages().get(id, Utc::now()) {
            Some(pending) => self.with_client(pending).await,
            None => self.pending(id).await,
        }
    }

    async fn with_client(
        &self,
        pending: PendingAuthorization,
    ) -> Result<Option<(PendingAuthorization, Client)>, AuthError> {
        Ok(self
            .find_client(&pending.params.client_id)
            .await?
            .map(|(client, _)| (pending, client)))
    }

    /// Forgets a pending request once it is answered.
    pub async fn finish_pending(&self, id: Uuid) -> Result<(), AuthError> {
        self.pending_pages().remove(id);
        self.store().delete_authorization_request(id).await?;
        Ok(())
    }

    /// Creates an account from the sign-up page and signs the browser in.
    pub async fn browser_sign_up(
        &self,
        input: &Registration,
        locales: &[String],
    ) -> Result<BrowserSignIn, AuthError> {
        let user = self.register(input, locales).await?;
        self.start_browser_session(user, vec![crate::id_token::AMR_PASSWORD.to_owned()])
            .await
    }

    /// Starts a sign-in session for `user`, who proved `amr`.
    pub(crate) async fn start_browser_session(
        &self,
        user: User,
        amr: Vec<String>,
    ) -> Result<BrowserSignIn, AuthError> {
        let now = Utc::now();
        let oauth = &self.policy().oauth;
        let cookie = OpaqueToken::generate();
        let expires_at = now + chrono_duration(oauth.browser_absolute_ttl);
        let session = BrowserSession {
            id: Uuid::now_v7(),
            digest: cookie.digest(),
            user_id: user.id,
            auth_time: crate::model::to_stored_precision(now),
            created_at: now,
            idle_expires_at: (now + chrono_duration(oauth.browser_idle_ttl)).min(expires_at),
            expires_at,
            amr,
        };
        self.store().create_browser_session(&session).await?;
        Ok(BrowserSignIn {
            cookie,
            session,
            user,
        })
    }

    /// The active sign-in session a cookie names, with its user; using it
    /// moves its idle expiry.
    pub async fn browser_session(
        &self,
        cookie: &str,
    ) -> Result<Option<(BrowserSession, User)>, AuthError> {
        let now = Utc::now();
        let idle_until = now + chrono_duration(self.policy().oauth.browser_idle_ttl);
        let digest = OpaqueToken::from_presented(cookie).digest();
        Ok(self
            .store()
            .touch_browser_session(&digest, now, idle_until)
            .await?
            .filter(|(_, user)| !user.disabled))
    }

    /// Ends the sign-in session a cookie names.
    pub async fn end_browser_session(&self, cookie: &str) -> Result<(), AuthError> {
        let digest = OpaqueToken::from_presented(cookie).digest();
        self.store().end_browser_session(&digest).await?;
        Ok(())
    }

    /// Remembers that `user` allowed `client` the scopes of `params`
    /// (added to what was allowed before).
    pub async fn record_consent(
        &self,
        user: &User,
        params: &AuthorizationParams,
    ) -> Result<(), AuthError> {
        let store = self.store();
        let before = store.find_consent(user.id, &params.client_id).await?;
        let scope = scope_union(before.as_deref().unwrap_or(""), params.scope.as_deref());
        store
            .save_consent(user.id, &params.client_id, &scope, Utc::now())
            .await?;
        self.audit(
            Audited::new(Actor::User(user.id), "consent.granted", Outcome::Success)
                .on_client(&params.client_id),
        )
        .await;
        Ok(())
    }

    /// What to call client `id` on a page: its name, or its id when it has
    /// since been deleted.
    pub async fn client_name(&self, id: &str) -> Result<String, AuthError> {
        Ok(match self.find_client(id).await? {
            Some((client, _)) => client.name,
            None => id.to_owned(),
        })
    }

    /// Withdraws what `user` allowed `client_id`: the client's sessions for
    /// this person end at once and its next authorization asks again.
    /// Returns how many sessions ended; [`AuthError::ConsentNotFound`] when
    /// nothing was allowed (then nothing changes).
    pub async fn withdraw_consent(&self, user: &User, client_id: &str) -> Result<u64, AuthError> {
        let revoked = self
            .store()
            .revoke_consent(user.id, client_id, Utc::now())
            .await?
            .ok_or(AuthError::ConsentNotFound)?;
        self.audit(
            Audited::new(Actor::User(user.id), "consent.revoked", Outcome::Success)
                .on_client(client_id),
        )
        .await;
        Ok(revoked)
    }

    /// The answer for a person who pressed **Deny**.
    pub fn denied(params: &AuthorizationParams) -> ClientRedirect {
        ClientRedirect::error(
            params,
            AuthorizeErrorCode::AccessDenied,
            "the person denied the request",
        )
    }
}

/// `prompt`: space-separated values; `none` must stand alone (Core §3.1.2.1).
fn parse_prompt(raw: Option<&str>) -> Option<Vec<Prompt>> {
    let Some(raw) = raw else {
        return Some(Vec::new());
    };
    let prompts: Vec<Prompt> = raw
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(Prompt::parse)
        .collect::<Option<_>>()?;
    (!(prompts.contains(&Prompt::None) && prompts.len() > 1)).then_some(prompts)
}
