//! The in-memory store: everything in one process's maps.
//!
//! A product feature, not a test double: `storage.backend = "memory"` runs a
//! complete Tessera that forgets everything on restart (demos, CI of
//! downstream apps). It is the reference adapter: one mutex makes every
//! check-and-write atomic, which is exactly the behaviour the database
//! adapters get from unique indexes and conditional updates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use auth_core::store::{Store, StoreError, UniqueField, UserStore};
use auth_core::{NewUser, User};
use uuid::Uuid;

#[derive(Default)]
struct Tables {
    users: HashMap<Uuid, UserRow>,
    by_username: HashMap<String, Uuid>,
    by_email: HashMap<String, Uuid>,
}

struct UserRow {
    user: User,
    username_key: String,
    email_key: String,
}

/// Cheap to clone; clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        // A poisoned lock means a panic mid-update: refuse rather than serve torn data.
        self.tables
            .lock()
            .map_err(|_| StoreError::Other("memory store lock poisoned".into()))
    }

    fn find_by_key(
        &self,
        index: impl Fn(&Tables) -> &HashMap<String, Uuid>,
        key: &str,
    ) -> Result<Option<User>, StoreError> {
        let tables = self.lock()?;
        Ok(index(&tables)
            .get(key)
            .and_then(|id| tables.users.get(id))
            .map(|row| row.user.clone()))
    }

    fn update_user(&self, id: Uuid, change: impl FnOnce(&mut User)) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        let row = tables.users.get_mut(&id).ok_or(StoreError::NotFound)?;
        change(&mut row.user);
        Ok(())
    }
}

impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        let username_key = user.username.key().to_owned();
        let email_key = user.email.key().to_owned();
        if tables.by_username.contains_key(&username_key) {
            return Err(StoreError::Conflict(UniqueField::Username));
        }
        if tables.by_email.contains_key(&email_key) {
            return Err(StoreError::Conflict(UniqueField::Email));
        }
        tables.by_username.insert(username_key.clone(), user.id);
        tables.by_email.insert(email_key.clone(), user.id);
        tables.users.insert(
            user.id,
            UserRow {
                user: user.clone().into_user(),
                username_key,
                email_key,
            },
        );
        Ok(())
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.get(&id).map(|row| row.user.clone()))
    }

    async fn find_user_by_username(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.find_by_key(|t| &t.by_username, username_key)
    }

    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        self.find_by_key(|t| &t.by_email, email_key)
    }

    async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        self.update_user(id, |user| user.password_hash = password_hash.to_owned())
    }

    async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        self.update_user(id, |user| user.disabled = disabled)
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        let Some(row) = tables.users.remove(&id) else {
            return Ok(false);
        };
        tables.by_username.remove(&row.username_key);
        tables.by_email.remove(&row.email_key);
        Ok(true)
    }
}

impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }

    /// Maps have no schema to migrate.
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}
