//! `/userinfo` (OpenID Connect Core §5.3): the claims of the person an
//! access token stands for, limited to the scopes it was granted. The token
//! comes in the `Authorization` header or the form body (RFC 6750 §2.1-2.2),
//! never both; errors are those of `/users/me`.

use std::sync::Arc;

use auth_core::Store;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use super::body::{BodyError, UrlEncoded};
use super::problem::ProblemResponse;
use super::AppState;

#[derive(Tags)]
enum UserInfoTag {
    /// OpenID Connect: claims about the signed-in person.
    OpenIdConnect,
}

/// The claims of the granted scopes (`openid` is required).
#[derive(Debug, Object)]
pub struct UserInfoClaims {
    /// The user id: the `sub` of the ID token.
    pub sub: String,
    /// With `profile`.
    #[oai(skip_serializing_if_is_none)]
    pub preferred_username: Option<String>,
    /// With `email`.
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// With `email`.
    #[oai(skip_serializing_if_is_none)]
    pub email_verified: Option<bool>,
}

/// The form-body alternative to the `Authorization` header.
#[allow(dead_code)]
#[derive(Object)]
pub struct UserInfoForm {
    /// The access token (RFC 6750 §2.2).
    #[oai(write_only)]
    pub access_token: Option<String>,
}

pub struct UserInfoApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> UserInfoApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(tag = "UserInfoTag::OpenIdConnect")]
impl<S: Store> UserInfoApi<S> {
    /// Claims about the person the access token (`Authorization: Bearer`)
    /// stands for; the token must have been granted `openid`.
    #[oai(path = "/userinfo", method = "get")]
    async fn userinfo_get(
        &self,
        req: &poem::Request,
    ) -> Result<Json<UserInfoClaims>, ProblemResponse> {
        self.answer(bearer_header(req)?).await
    }

    /// The same as `GET`; the token may instead be the form field
    /// `access_token`.
    #[oai(path = "/userinfo", method = "post")]
    async fn userinfo_post(
        &self,
        req: &poem::Request,
        body: UrlEncoded<UserInfoForm>,
    ) -> Result<Json<UserInfoClaims>, ProblemResponse> {
        let from_body = match body.result {
            Ok(form) => form.single("access_token")?.map(str::to_owned),
            // No form at all is fine when the header carries the token.
            Err(BodyError::UnsupportedMediaType) => None,
            Err(e) => return Err(e.into()),
        };
        let token = match (bearer_header(req)?, from_body) {
            (Some(_), Some(_)) => {
                return Err(ProblemResponse::from_status(
                    StatusCode::BAD_REQUEST,
                    "send the access token in the header or the body, not both (RFC 6750 §2)",
                ))
            }
            (header, body) => header.or(body),
        };
        self.answer(token).await
    }
}

/// An `Authorization` header that is not `Bearer <token>`.
struct NotBearer;

impl From<NotBearer> for ProblemResponse {
    fn from(_: NotBearer) -> Self {
        ProblemResponse::from_status(StatusCode::UNAUTHORIZED, "bearer credentials are required")
    }
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1; the
/// scheme is case-insensitive); another scheme is refused.
fn bearer_header(req: &poem::Request) -> Result<Option<String>, NotBearer> {
    let Some(value) = req.header(poem::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(NotBearer),
    }
}

impl<S: Store> UserInfoApi<S> {
    async fn answer(&self, token: Option<String>) -> Result<Json<UserInfoClaims>, ProblemResponse> {
        let Some(token) = token else {
            return Err(ProblemResponse::from_status(
                StatusCode::UNAUTHORIZED,
                "bearer credentials are required",
            ));
        };
        let info = self.state.service.userinfo(&token).await?;
        Ok(Json(UserInfoClaims {
            sub: info.sub,
            preferred_username: info.profile.preferred_username,
            email: info.profile.email,
            email_verified: info.profile.email_verified,
        }))
    }
}
