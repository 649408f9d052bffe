//! `/admin/v1/clients`.

use std::sync::Arc;

use auth_core::client::ClientSource;
use auth_core::{Client, ClientRegistration, FieldError, GrantType, Store};
use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::users::Done;
use super::{authorize, AdminTag, AdminToken};
use crate::api::body::{BodyError, FieldReader, JsonObject};
use crate::api::problem::ProblemResponse;
use crate::api::AppState;

/// A client (never its secret, which only its hash is kept of).
#[derive(Debug, Object)]
pub struct AdminClient {
    pub id: String,
    /// Shown on the consent page.
    pub name: String,
    /// `true`: no secret, PKCE only (browser and native apps).
    pub public: bool,
    /// `configuration` (read-only here: the file is its source) or `store`.
    pub source: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// Skips the consent page.
    pub first_party: bool,
    pub created_at: DateTime<Utc>,
    /// Only in the answer that created the client: store it now, it cannot
    /// be shown again.
    #[oai(nullable, skip_serializing_if_is_none)]
    pub secret: Option<String>,
}

fn admin_client(client: Client, source: ClientSource, secret: Option<String>) -> AdminClient {
    AdminClient {
        public: client.is_public(),
        source: match source {
            ClientSource::Config => "configuration",
            ClientSource::Store => "store",
        }
        .into(),
        grant_types: client.grant_types.iter().map(ToString::to_string).collect(),
        id: client.id,
        name: client.name,
        redirect_uris: client.redirect_uris,
        post_logout_redirect_uris: client.post_logout_redirect_uris,
        scopes: client.scopes,
        first_party: client.first_party,
        created_at: client.created_at,
        secret,
    }
}

/// Every client (one page: `next_cursor` is always `null`).
#[derive(Debug, Object)]
pub struct ClientList {
    pub items: Vec<AdminClient>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// `POST /admin/v1/clients` input.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct ClientRequest {
    /// 1–64 letters, digits and `. _ ~ -`.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub id: String,
    /// Default: the id.
    #[oai(nullable)]
    pub name: Option<String>,
    /// Default `false`: a confidential client, whose secret is generated
    /// and answered once.
    #[oai(nullable)]
    pub public: Option<bool>,
    /// Exact-match redirect URIs (needed for `authorization_code`).
    #[oai(nullable)]
    pub redirect_uris: Option<Vec<String>>,
    #[oai(nullable)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `authorization_code`, `refresh_token`, `password`,
    /// `client_credentials` (default: the first two).
    #[oai(nullable)]
    pub grant_types: Option<Vec<String>>,
    /// Default: `openid profile email offline_access`; `admin` allows this API.
    #[oai(nullable)]
    pub scopes: Option<Vec<String>>,
    #[oai(nullable)]
    pub first_party: Option<bool>,
}

/// `PATCH /admin/v1/clients/{id}` input: what is absent (or `null`) stays.
// Read by hand in `body.rs`; this type only documents the schema.
#[allow(dead_code)]
#[derive(Object)]
pub struct UpdateClientRequest {
    #[oai(nullable)]
    pub name: Option<String>,
    #[oai(nullable)]
    pub redirect_uris: Option<Vec<String>>,
    #[oai(nullable)]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    #[oai(nullable)]
    pub grant_types: Option<Vec<String>>,
    #[oai(nullable)]
    pub scopes: Option<Vec<String>>,
    #[oai(nullable)]
    pub first_party: Option<bool>,
}

/// The settable fields of a client as sent; `None` keeps what is there.
struct ClientFields {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<GrantType>>,
    scopes: Option<Vec<String>>,
    first_party: Option<bool>,
}

impl ClientFields {
    fn read(reader: &mut FieldReader<'_>) -> Result<Self, BodyError> {
        let grant_names = reader.strings("grant_types");
        let mut unknown = Vec::new();
        let grant_types = grant_names.map(|names| {
            names
                .iter()
                .filter_map(|name| {
                    let parsed = GrantType::parse(name);
                    if parsed.is_none() {
                        unknown.push(FieldError::new(
                            "grant_types",
                            format!("`{name}` is not a grant type this server has"),
                        ));
                    }
                    parsed
                })
                .collect()
        });
        let fields = Self {
            name: reader.string("name"),
            redirect_uris: reader.strings("redirect_uris"),
            post_logout_redirect_uris: reader.strings("post_logout_redirect_uris"),
            grant_types,
            scopes: reader.strings("scopes"),
            first_party: reader.bool("first_party"),
        };
        if unknown.is_empty() {
            Ok(fields)
        } else {
            Err(BodyError::Missing(unknown))
        }
    }

    fn apply(self, registration: &mut ClientRegistration) {
        if let Some(name) = self.name {
            registration.name = Some(name);
        }
        if let Some(uris) = self.redirect_uris {
            registration.redirect_uris = uris;
        }
        if let Some(uris) = self.post_logout_redirect_uris {
            registration.post_logout_redirect_uris = uris;
        }
        if let Some(grants) = self.grant_types {
            registration.grant_types = grants;
        }
        if let Some(scopes) = self.scopes {
            registration.scopes = scopes;
        }
        if let Some(first_party) = self.first_party {
            registration.first_party = first_party;
        }
    }
}

#[derive(Debug, Object)]
pub struct RotatedSecret {
    /// The new secret; the old one no longer works. Shown once.
    pub secret: String,
}

#[derive(Debug, ApiResponse)]
pub enum ClientCreated {
    /// Created; a confidential client's `secret` is in this answer only.
    #[oai(status = 201)]
    Created(Json<AdminClient>, #[oai(header = "Location")] String),
}

pub struct AdminClientsApi<S> {
    state: Arc<AppState<S>>,
}

impl<S> AdminClientsApi<S> {
    pub fn new(state: Arc<AppState<S>>) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/admin/v1", tag = "AdminTag::AdminClients")]
impl<S: Store> AdminClientsApi<S> {
    /// Every client, configured and stored, by id.
    #[oai(path = "/clients", method = "get")]
    async fn list_clients(&self, auth: AdminToken) -> Result<Json<ClientList>, ProblemResponse> {
        authorize(&self.state, &auth).await?;
        let items = self
            .state
            .service
            .all_clients()
            .await?
            .into_iter()
            .map(|(client, source)| admin_client(client, source, None))
            .collect();
        Ok(Json(ClientList {
            items,
            next_cursor: None,
        }))
    }

    /// Register a client. A confidential one (`public` false, the default)
    /// gets a generated secret, answered once.
    #[oai(path = "/clients", method = "post")]
    async fn create_client(
        &self,
        auth: AdminToken,
        body: JsonObject<ClientRequest>,
    ) -> Result<ClientCreated, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let fields = body.result?;
        let mut reader = fields.reader();
        let id = reader.required_string("id");
        let public = reader.bool("public").unwrap_or(false);
        let given = ClientFields::read(&mut reader);
        reader.finish()?;
        let mut registration = ClientRegistration {
            id,
            ..ClientRegistration::default()
        };
        given?.apply(&mut registration);
        let added = self
            .state
            .service
            .add_client(&actor, &registration, public)
            .await?;
        let location = format!("{}/clients/{}", super::PREFIX, added.client.id);
        let secret = added.secret.map(|s| s.expose().to_owned());
        Ok(ClientCreated::Created(
            Json(admin_client(added.client, ClientSource::Store, secret)),
            location,
        ))
    }

    /// One client.
    #[oai(path = "/clients/:id", method = "get")]
    async fn get_client(
        &self,
        auth: AdminToken,
        id: Path<String>,
    ) -> Result<Json<AdminClient>, ProblemResponse> {
        authorize(&self.state, &auth).await?;
        let (client, source) = self.state.service.client(&id.0).await?;
        Ok(Json(admin_client(client, source, None)))
    }

    /// Change a stored client (a configured one is 409: edit the file);
    /// what is absent stays. The result must pass the rules of a new one.
    #[oai(path = "/clients/:id", method = "patch")]
    async fn update_client(
        &self,
        auth: AdminToken,
        id: Path<String>,
        body: JsonObject<UpdateClientRequest>,
    ) -> Result<Json<AdminClient>, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let fields = body.result?;
        let mut reader = fields.reader();
        let given = ClientFields::read(&mut reader);
        reader.finish()?;
        let given = given?;
        let client = self
            .state
            .service
            .update_client(&actor, &id.0, |registration| given.apply(registration))
            .await?;
        Ok(Json(admin_client(client, ClientSource::Store, None)))
    }

    /// Delete a stored client; its tokens can no longer be refreshed.
    #[oai(path = "/clients/:id", method = "delete")]
    async fn delete_client(
        &self,
        auth: AdminToken,
        id: Path<String>,
    ) -> Result<Done, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        self.state.service.delete_client(&actor, &id.0).await?;
        Ok(Done::NoContent)
    }

    /// Replace a confidential client's secret; the old one stops working
    /// at once.
    #[oai(path = "/clients/:id/rotate-secret", method = "post")]
    async fn rotate_secret(
        &self,
        auth: AdminToken,
        id: Path<String>,
    ) -> Result<Json<RotatedSecret>, ProblemResponse> {
        let actor = authorize(&self.state, &auth).await?;
        let secret = self
            .state
            .service
            .rotate_client_secret(&actor, &id.0)
            .await?;
        Ok(Json(RotatedSecret {
            secret: secret.expose().to_owned(),
        }))
    }
}
