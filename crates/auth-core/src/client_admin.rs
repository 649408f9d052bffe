//! Operator actions on clients (`tessera client ...`). Clients defined in
//! configuration are read-only here: the file is their source of truth.

use crate::audit::{Actor, Audited, Outcome};
use crate::client::{generate_secret, Client, ClientRegistration, ClientSource};
use crate::error::AuthError;
use crate::service::AuthService;
use crate::store::{Store, StoreError};

/// A client just stored, with its secret when it has one: the only time
/// the secret is ever available.
#[derive(Debug)]
pub struct NewClientSecret {
    pub client: Client,
    pub secret: Option<crate::Secret>,
}

impl<S: Store> AuthService<S> {
    /// Stores a new client. `registration.secret` is ignored: a
    /// confidential client (`public == false`) gets a generated secret.
    pub async fn add_client(
        &self,
        actor: &Actor,
        registration: &ClientRegistration,
        public: bool,
    ) -> Result<NewClientSecret, AuthError> {
        if self.find_client(&registration.id).await?.is_some() {
            return Err(AuthError::Conflict(crate::store::UniqueField::ClientId));
        }
        let secret = (!public).then(|| crate::Secret::new(generate_secret()));
        let client = ClientRegistration {
            secret: secret.clone(),
            ..registration.clone()
        }
        .validate()?;
        self.store().insert_client(&client).await?;
        self.audit(
            Audited::new(actor.clone(), "client.created", Outcome::Success).on_client(&client.id),
        )
        .await;
        Ok(NewClientSecret { client, secret })
    }

    /// A client by id, wherever it is defined.
    pub async fn client(&self, id: &str) -> Result<(Client, ClientSource), AuthError> {
        self.find_client(id)
            .await?
            .ok_or_else(|| AuthError::ClientNotFound(id.to_owned()))
    }

    /// A stored client, refusing configured ones.
    async fn stored_client(&self, id: &str) -> Result<Client, AuthError> {
        match self.client(id).await? {
            (client, ClientSource::Store) => Ok(client),
            (_, ClientSource::Config) => Err(AuthError::ClientConfigured(id.to_owned())),
        }
    }

    /// Applies `change` to a stored client and checks the result with the
    /// same rules as a new one.
    pub async fn update_client(
        &self,
        actor: &Actor,
        id: &str,
        change: impl FnOnce(&mut ClientRegistration),
    ) -> Result<Client, AuthError> {
        let current = self.stored_client(id).await?;
        let mut registration = ClientRegistration {
            id: current.id.clone(),
            name: Some(current.name.clone()),
            // Any placeholder long enough: the stored digest is kept below.
            secret: current
                .secret_digest
                .map(|_| crate::Secret::new("x".repeat(crate::client::MIN_SECRET_CHARS))),
            redirect_uris: current.redirect_uris.clone(),
            post_logout_redirect_uris: current.post_logout_redirect_uris.clone(),
            grant_types: current.grant_types.clone(),
            scopes: current.scopes.clone(),
            first_party: current.first_party,
        };
        change(&mut registration);
        let updated = Client {
            secret_digest: current.secret_digest,
            created_at: current.created_at,
            ..registration.validate()?
        };
        self.store()
            .update_client(&updated)
            .await
            .map_err(|e| gone(e, id))?;
        self.audit(Audited::new(actor.clone(), "client.updated", Outcome::Success).on_client(id))
            .await;
        Ok(updated)
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    pub async fn rotate_client_secret(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<crate::Secret, AuthError> {
        let current = self.stored_client(id).await?;
        if current.is_public() {
            return Err(AuthError::Validation(crate::ValidationErrors(vec![
                crate::FieldError::new("secret", "a public client has no secret to rotate"),
            ])));
        }
        let secret = crate::Secret::new(generate_secret());
        let updated = Client {
            secret_digest: Some(crate::client::digest_secret(secret.expose())),
            ..current
        };
        self.store()
            .update_client(&updated)
            .await
            .map_err(|e| gone(e, id))?;
        self.audit(
            Audited::new(actor.clone(), "client.secret_rotated", Outcome::Success).on_client(id),
        )
        .await;
        Ok(secret)
    }

    /// Deletes a stored client.
    pub async fn delete_client(&self, actor: &Actor, id: &str) -> Result<(), AuthError> {
        self.stored_client(id).await?;
        if self.store().delete_client(id).await? {
            self.audit(
                Audited::new(actor.clone(), "client.deleted", Outcome::Success).on_client(id),
            )
            .await;
            Ok(())
        } else {
            Err(AuthError::ClientNotFound(id.to_owned()))
        }
    }
}

fn gone(err: StoreError, id: &str) -> AuthError {
    match err {
        StoreError::NotFound => AuthError::ClientNotFound(id.to_owned()),
        other => other.into(),
    }
}
