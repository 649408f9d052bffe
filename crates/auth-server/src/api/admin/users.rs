//! `/admin/v1/users` and `/admin/v1/sessions`.

use std::sync::Arc;

use auth_core::{
    BrowserSession, Registration, Session, Store, User, UserChange, UserQuery, UserSummary,
};
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::{authorize, decode_cursor, encode_cursor, AdminTag, AdminToken};
use crate::api::body::JsonObject;
use crate::api::direct_json::DirectJson;
use crate::api::problem::ProblemResponse;
use crate::api::users::PublicUser;
use crate::api::AppState;

/// An account as an operator sees it: what its owner sees at `/users/me`,
/// and whether it is disabled (never its password hash).
#[derive(Debug, Object, serde::Serialize)]
pub struct AdminUser {
    #[oai(flatten)]
    #[serde(flatten)]
    pub account: PublicUser,
    /// A disabled account cannot sign in and has no active session.
    pub disabled: bool,
}

impl From<User> for AdminUser {
    fn from(user: User) -> Self {
        UserSummary::from(user).into()
    }
}

impl From<UserSummary> for AdminUser {
    fn from(user: UserSummary) -> Self {
        Self {
            disabled: user.disabled,
            account: user.into(),
        }
    }
}

/// One page of accounts, in username order (written by `serde`: see
/// [`DirectJson`]).
#[derive(Debug, Object, serde::Serialize)]
pub struct UserPage {
    pub items: Vec<AdminUser>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// `POST /admin/v1/users` input: the rules of self-registration.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct CreateUserRequest {
    /// 3–32 characters of `A-Z a-z 0-9 _ . -` (after NFKC); unique ignoring case.
    #[oai(validator(min_length = 3, max_length = 32))]
    pub username: String,
    /// A valid address of at most 254 characters; unique ignoring case.
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: String,
    /// 8–128 characters, not common, not equal to the username or email.
    #[oai(write_only, validator(min_length = 8, max_length = 128))]
    pub password: String,
}

/// `PATCH /admin/v1/users/{id}` input: what is absent (or `null`) stays.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct UpdateUserRequest {
    /// A new address (unique ignoring case); it counts as unverified unless
    /// `email_verified` says otherwise.
    #[oai(nullable, validator(min_length = 3, max_length = 254))]
    pub email: Option<String>,
    #[oai(nullable)]
    pub email_verified: Option<bool>,
    /// Disabling ends every session at once.
    #[oai(nullable)]
    pub disabled: Option<bool>,
}

/// `POST /admin/v1/users/{id}/password` input.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct SetPasswordRequest {
    /// The rules of registration apply.
    #[oai(write_only, validator(min_length = 8, max_length = 128))]
    pub password: String,
}

/// What `reset-factors` removed.
#[derive(Debug, Object)]
pub struct FactorsReset {
    /// Second factors removed (authenticator apps and passkeys); recovery
    /// codes go too, and every session has ended.
    pub removed: u64,
}

/// An active session of an account.
#[derive(Debug, Object)]
pub struct AdminSession {
    /// For a token session, the `sid` of its tokens.
    pub id: Uuid,
    /// `token` (an OAuth session: refresh and access tokens) or `browser`
    /// (a sign-in on the hosted pages).
    pub kind: String,
    /// The client of a token session.
    #[oai(nullable, skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    #[oai(nullable, skip_serializing_if_is_none)]
    pub scope: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the person last proved who they are, where known.
    #[oai(nullable, skip_serializing_if_is_none)]
    pub auth_time: Option<DateTime<Utc>>,
    /// How (RFC 8176 values: `pwd`, `otp`, `hwk`, `mfa`, ...).
    pub amr: Vec<String>,
}

impl From<Session> for AdminSession {
    fn from(session: Session) -> Self {
        Self {
            id: session.id,
            kind: "token".into(),
            client_id: Some(session.client_id),
            scope: session.scope,
            created_at: session.created_at,
            expires_at: session.expires_at,
            auth_time: session.auth_time,
            amr: session
                .amr
                .map(|amr| amr.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }
}

impl From<BrowserSession> for AdminSession {
    fn from(session: BrowserSession) -> Self {
        Self {
            id: session.id,
            kind: "browser".into(),
            client_id: None,
            scope: None,
            created_at: session.created_at,
            expires_at: session.idle_expires_at.min(session.expires_at),
            auth_time: Some(session.auth_time),
            amr: session.amr,
        }
    }
}

/// An account's sessions (one page: `next_cursor` is always `null`).
#[derive(Debug, Object)]
pub struct SessionList {
    pub items: Vec<AdminSession>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, ApiResponse)]
pub enum UserCreated {
    /// Created; `Location` names it.
    #[oai(status = 201)]
    Created(Json<AdminUser>, #[oai(header = "Location")] String),
}

#[derive(Debug, ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

pub struct AdminUsersApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> AdminUsersApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "AdminTag::AdminUsers")]
impl<S: Store> AdminUsersApi<S> {
    /// Accounts in username order, a page at a time. `q` keeps those whose
    /// username or email starts with it (any case). Pages are stable while
    /// accounts are added: pass `next_cursor` back as `cursor`.
    #[oai(path = "/users", method = "get")]
    async fn list_users(
        &self,
        auth: AdminToken,
        #[oai(validator(max_length = 254))] q: Query<Option<String>>,
        #[oai(validator(max_length = 512))] cursor: Query<Option<String>>,
        /// 1–1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<DirectJson<UserPage>, ProblemResponse> {
        authorize(&self.state, &auth).await?;
        let after = decode_cursor(cursor.0.as_deref())?;
        let page = self
            .state
            .service
            .list_users(UserQuery::search(
                q.0.as_deref(),
                after,
                limit.0.unwrap_or(100),
            ))
            .await?;
        Ok(DirectJson(UserPage {
            items: page.items.into_iter().map(AdminUser::from).collect(),
            next_cursor: page.next.as_deref().map(encode_cursor),
        }))
    }

    /// Create an account (the rules of registration; the verification
    /// message goes out as for a self-registered one).
    #[oai(path = "/users", method = "post")]
    async fn create_user(
        &self,
        auth: AdminToken,
        body: JsonObject<CreateUserRequest>,
    ) -> Result<UserCreated, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let [username, email, password] =
            body.result?.strings(["username", "email", "password"])?;
        let user = self
            .state
            .service
            .create_user(
                &actor,
                &Registration {
                    username,
                    email,
                    password,
                },
            )
            .await?;
        let location = format!("{}/users/{}", super::PREFIX, user.id);
        Ok(UserCreated::Created(Json(user.into()), location))
    }

    /// One account.
    #[oai(path = "/users/:id", method = "get")]
    async fn get_user(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
    ) -> Result<Json<AdminUser>, ProblemResponse> {
        authorize(&self.state, &auth).await?;
        Ok(Json(self.state.service.user_by_id(id.0).await?.into()))
    }

    /// Change the address, its verification and whether the account is
    /// disabled; what is absent stays.
    #[oai(path = "/users/:id", method = "patch")]
    async fn update_user(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
        body: JsonObject<UpdateUserRequest>,
    ) -> Result<Json<AdminUser>, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let fields = body.result?;
        let mut reader = fields.reader();
        let change = UserChange {
            email: reader.string("email"),
            email_verified: reader.bool("email_verified"),
            disabled: reader.bool("disabled"),
        };
        reader.finish()?;
        let service = &self.state.service;
        let user = service.user_by_id(id.0).await?;
        Ok(Json(
            service.update_user(&actor, &user, &change).await?.into(),
        ))
    }

    /// Delete an account with its sessions, factors and consents (its
    /// audit history stays).
    #[oai(path = "/users/:id", method = "delete")]
    async fn delete_user(&self, auth: AdminToken, id: Path<Uuid>) -> Result<Done, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let service = &self.state.service;
        let user = service.user_by_id(id.0).await?;
        service.delete_account(&actor, &user).await?;
        Ok(Done::NoContent)
    }

    /// Disable an account: it cannot sign in, and every session ends now.
    #[oai(path = "/users/:id/disable", method = "post")]
    async fn disable_user(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
    ) -> Result<Json<AdminUser>, ProblemResponse> {
        self.set_disabled(auth, id.0, true).await
    }

    /// Enable a disabled account again.
    #[oai(path = "/users/:id/enable", method = "post")]
    async fn enable_user(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
    ) -> Result<Json<AdminUser>, ProblemResponse> {
        self.set_disabled(auth, id.0, false).await
    }

    /// Replace the password (the rules of registration apply); every
    /// session ends and the person is told by mail.
    #[oai(path = "/users/:id/password", method = "post")]
    async fn set_password(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
        body: JsonObject<SetPasswordRequest>,
    ) -> Result<Done, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let [password] = body.result?.strings(["password"])?;
        let service = &self.state.service;
        let user = service.user_by_id(id.0).await?;
        service.reset_password(&actor, &user, &password).await?;
        Ok(Done::NoContent)
    }

    /// Remove every second factor and the recovery codes, and end every
    /// session: for a lost phone or key.
    #[oai(path = "/users/:id/reset-factors", method = "post")]
    async fn reset_factors(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
    ) -> Result<Json<FactorsReset>, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let service = &self.state.service;
        let user = service.user_by_id(id.0).await?;
        let removed = service.reset_factors(&actor, &user).await?;
        Ok(Json(FactorsReset { removed }))
    }

    /// An account's active sessions, newest first: token sessions, then
    /// browser sign-ins.
    #[oai(path = "/users/:id/sessions", method = "get")]
    async fn list_sessions(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
    ) -> Result<Json<SessionList>, ProblemResponse> {
        authorize(&self.state, &auth).await?;
        let service = &self.state.service;
        let user = service.user_by_id(id.0).await?;
        let sessions = service.user_sessions(&user).await?;
        let items = sessions
            .token_sessions
            .into_iter()
            .map(AdminSession::from)
            .chain(
                sessions
                    .browser_sessions
                    .into_iter()
                    .map(AdminSession::from),
            )
            .collect();
        Ok(Json(SessionList {
            items,
            next_cursor: None,
        }))
    }

    /// Revoke one token session (its id is the `sid` of its tokens): its
    /// refresh token and access tokens stop working at once.
    #[oai(path = "/sessions/:id", method = "delete")]
    async fn revoke_session(
        &self,
        auth: AdminToken,
        id: Path<Uuid>,
    ) -> Result<Done, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        self.state
            .service
            .revoke_session_by_id(&actor, id.0)
            .await?;
        Ok(Done::NoContent)
    }
}

impl<S: Store> AdminUsersApi<S> {
    async fn set_disabled(
        &self,
        auth: AdminToken,
        id: Uuid,
        disabled: bool,
    ) -> Result<Json<AdminUser>, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let service = &self.state.service;
        let user = service.user_by_id(id).await?;
        Ok(Json(
            service
                .set_user_disabled(&actor, &user, disabled)
                .await?
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON as _;

    use super::*;

    fn page(next_cursor: Option<String>) -> UserPage {
        let account = |username: &str, email_verified| PublicUser {
            id: Uuid::now_v7(),
            username: username.into(),
            email: format!("\"{username}\"@jürgen.example"),
            email_verified,
            created_at: Utc::now(),
        };
        UserPage {
            items: vec![
                AdminUser {
                    account: account("ada", true),
                    disabled: false,
                },
                AdminUser {
                    account: account("b\\o\"b", false),
                    disabled: true,
                },
            ],
            next_cursor,
        }
    }

    #[test]
    fn a_page_written_by_serde_is_byte_for_byte_what_to_json_writes() {
        for page in [
            page(Some("YWRh".into())),
            page(None),
            UserPage {
                items: vec![],
                next_cursor: None,
            },
        ] {
            let by_serde = serde_json::to_string(&page).unwrap();
            let by_to_json = serde_json::to_string(&page.to_json().unwrap()).unwrap();
            assert_eq!(by_serde, by_to_json);
        }
    }
}
