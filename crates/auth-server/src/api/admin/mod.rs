//! `/admin/v1`: the administration API. Every operation here is the twin
//! of a `tessera` command and calls the same `auth-core` use case, so both
//! apply the same rules and leave the same audit record; the only
//! difference is the actor (`client:<id>` here, `operator` there).

mod audit;
mod clients;
mod users;

pub use audit::AdminAuditApi;
pub use clients::AdminClientsApi;
pub use users::AdminUsersApi;

use auth_core::{Actor, Client, Store};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use poem::http::StatusCode;
use poem_openapi::auth::Bearer;
use poem_openapi::{OAuthScopes, SecurityScheme, Tags};

use super::problem::ProblemResponse;
use super::AppState;

/// The path every administration route starts with.
pub const PREFIX: &str = "/admin/v1";

#[derive(Tags)]
#[allow(clippy::enum_variant_names)] // the names are the tags /openapi.json shows
pub enum AdminTag {
    /// Accounts and their sessions (`/admin/v1/users`, `/admin/v1/sessions`).
    AdminUsers,
    /// OAuth clients (`/admin/v1/clients`).
    AdminClients,
    /// The audit log (`/admin/v1/audit`).
    AdminAudit,
}

/// Documents the scope in the OpenAPI security scheme; never constructed.
#[allow(dead_code)]
#[derive(OAuthScopes)]
pub enum AdminScopes {
    /// Everything under `/admin/v1`.
    #[oai(rename = "admin")]
    Admin,
}

/// A token from the `client_credentials` grant of a client allowed the
/// `admin` scope (`tessera client add ID --admin`). Without a token: 401;
/// any other token: 403 `insufficient_scope`.
#[derive(SecurityScheme)]
#[oai(
    ty = "oauth2",
    flows(client_credentials(token_url = "/token", scopes = "AdminScopes"))
)]
pub struct AdminToken(Bearer);

/// The administration client a request's token speaks for, as the actor
/// of what it does.
async fn authorize<S: Store>(
    state: &AppState<S>,
    token: &AdminToken,
) -> Result<Actor, ProblemResponse> {
    let client: Client = state.service.admin_client(&token.0.token).await?;
    Ok(Actor::Client(client.id))
}

/// Cursors are opaque to callers: base64url of the store's position.
fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

/// A `cursor` parameter this server did not give out.
#[derive(Debug)]
struct ForeignCursor;

impl From<ForeignCursor> for ProblemResponse {
    fn from(_: ForeignCursor) -> Self {
        ProblemResponse::from_status(
            StatusCode::BAD_REQUEST,
            "`cursor` is not a cursor this server gave out",
        )
    }
}

/// The position a cursor of ours holds; anything else is a 400.
fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ForeignCursor> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or(ForeignCursor)
}
