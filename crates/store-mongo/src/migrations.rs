//! Versioned schema steps for MongoDB, recorded in `_migrations`.
//!
//! MongoDB has no schema to alter, but it has collections, unique indexes
//! (which carry the uniqueness guarantees) and TTL indexes (which expire
//! tokens and sessions even if no server runs the purge). Each step is
//! idempotent (creating an existing collection or an identical index is a
//! no-op) and a run holds a lease in `_migrations` so two processes starting
//! at once apply each step exactly once between them.

use std::time::Duration;

use auth_core::StoreError;
use chrono::Utc;
use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use uuid::Uuid;

use crate::documents::{
    bson_time, MigrationDoc, AUTHORIZATION_CODES, AUTHORIZATION_REQUESTS, BROWSER_SESSIONS,
    CLIENTS, CONSENTS, EMAIL_INDEX, EMAIL_LINKS, LOGIN_THROTTLE, MAIL_OUTBOX, MIGRATIONS,
    REFRESH_TOKENS, SESSIONS, USERNAME_INDEX, USERS,
};
use crate::documents::{AUDIT_LOG, CEREMONIES, FACTORS, FACTOR_UNIQUE_INDEX, RECOVERY_CODES};
use crate::errors::{is_duplicate_key, map_error};

/// A step this build knows: what it creates is part of its entry, so a
/// step cannot be listed without saying what it does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub collections: &'static [Collection],
}

/// A collection and the indexes a step gives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Collection {
    pub name: &'static str,
    pub indexes: &'static [Index],
}

/// An index on one field, named so errors can say which one fired.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Index {
    Plain {
        field: &'static str,
        name: &'static str,
    },
    /// Carries a uniqueness guarantee (duplicate-key errors name it).
    Unique {
        field: &'static str,
        name: &'static str,
    },
    /// A TTL index: MongoDB deletes the document once `expires_at` has
    /// passed (its monitor runs about once a minute). The purge loop still
    /// removes revoked sessions, which TTL cannot see.
    Expiry { name: &'static str },
}

impl Migration {
    pub fn label(&self) -> String {
        format!("{} {}", self.version, self.description)
    }
}

pub(crate) const ALL: &[Migration] = &[
    Migration {
        version: 20261129000001,
        description: "users",
        collections: &[Collection {
            name: USERS,
            indexes: &[
                Index::Unique {
                    field: "username_key",
                    name: USERNAME_INDEX,
                },
                Index::Unique {
                    field: "email_key",
                    name: EMAIL_INDEX,
                },
            ],
        }],
    },
    Migration {
        version: 20261129000002,
        description: "sessions",
        collections: &[
            Collection {
                name: SESSIONS,
                indexes: &[
                    Index::Plain {
                        field: "user_id",
                        name: "sessions_user_id",
                    },
                    Index::Expiry {
                        name: "sessions_expire",
                    },
                ],
            },
            Collection {
                name: REFRESH_TOKENS,
                indexes: &[
                    Index::Plain {
                        field: "session_id",
                        name: "refresh_tokens_session_id",
                    },
                    Index::Expiry {
                        name: "refresh_tokens_expire",
                    },
                ],
            },
        ],
    },
    Migration {
        version: 20261129000003,
        description: "login throttle",
        collections: &[Collection {
            name: LOGIN_THROTTLE,
            indexes: &[],
        }],
    },
    Migration {
        version: 20261129000004,
        description: "clients",
        collections: &[Collection {
            name: CLIENTS,
            indexes: &[],
        }],
    },
    Migration {
        version: 20261129000005,
        description: "browser flows",
        collections: &[
            Collection {
                name: AUTHORIZATION_REQUESTS,
                indexes: &[Index::Expiry {
                    name: "authorization_requests_expire",
                }],
            },
            Collection {
                name: AUTHORIZATION_CODES,
                indexes: &[Index::Expiry {
                    name: "authorization_codes_expire",
                }],
            },
            Collection {
                name: BROWSER_SESSIONS,
                indexes: &[
                    Index::Plain {
                        field: "user_id",
                        name: "browser_sessions_user_id",
                    },
                    Index::Expiry {
                        name: "browser_sessions_expire",
                    },
                ],
            },
            Collection {
                name: CONSENTS,
                indexes: &[Index::Plain {
                    field: "user_id",
                    name: "consents_user_id",
                }],
            },
        ],
    },
    Migration {
        version: 20261129000006,
        description: "openid sessions",
        collections: &[
            Collection {
                name: SESSIONS,
                indexes: &[Index::Plain {
                    field: "browser_session_id",
                    name: "sessions_browser_session_id",
                }],
            },
            Collection {
                name: BROWSER_SESSIONS,
                indexes: &[Index::Plain {
                    field: "id",
                    name: "browser_sessions_id",
                }],
            },
        ],
    },
    Migration {
        version: 20261130000007,
        description: "mail",
        collections: &[
            Collection {
                // Not a TTL index: an expired link must still read back,
                // so its page can say "expired"; the purge removes it later.
                name: EMAIL_LINKS,
                indexes: &[
                    Index::Plain {
                        field: "user_id",
                        name: "email_links_user_id",
                    },
                    Index::Plain {
                        field: "expires_at",
                        name: "email_links_expires_at",
                    },
                ],
            },
            Collection {
                name: MAIL_OUTBOX,
                indexes: &[
                    Index::Plain {
                        field: "due_at",
                        name: "mail_outbox_due_at",
                    },
                    Index::Plain {
                        field: "finished_at",
                        name: "mail_outbox_finished_at",
                    },
                ],
            },
        ],
    },
    Migration {
        version: 20261203000008,
        description: "factors",
        collections: &[
            Collection {
                name: FACTORS,
                indexes: &[
                    Index::Plain {
                        field: "user_id",
                        name: "factors_user_id",
                    },
                    Index::Plain {
                        field: "credential_id",
                        name: "factors_credential_id",
                    },
                    Index::Unique {
                        field: "unique_key",
                        name: FACTOR_UNIQUE_INDEX,
                    },
                ],
            },
            Collection {
                name: RECOVERY_CODES,
                indexes: &[Index::Plain {
                    field: "user_id",
                    name: "recovery_codes_user_id",
                }],
            },
            Collection {
                // Expired ceremonies are worthless: MongoDB may drop them.
                name: CEREMONIES,
                indexes: &[Index::Expiry {
                    name: "ceremonies_expire",
                }],
            },
        ],
    },
    Migration {
        version: 20261203000009,
        description: "audit log",
        collections: &[Collection {
            // Not TTL: retention is a setting, enforced by the purge loop.
            name: AUDIT_LOG,
            indexes: &[
                Index::Plain {
                    field: "time",
                    name: "audit_log_time",
                },
                Index::Plain {
                    field: "actor",
                    name: "audit_log_actor",
                },
                Index::Plain {
                    field: "target",
                    name: "audit_log_target",
                },
                Index::Plain {
                    field: "action",
                    name: "audit_log_action",
                },
            ],
        }],
    },
];

/// The id of the lease document; versions are numbers, so it cannot clash.
const LOCK_ID: &str = "lock";
/// A holder that died releases the lease after this long.
const LEASE: Duration = Duration::from_secs(60);
/// How long a second process waits for the first to finish.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Applies what is missing; returns the labels of the steps applied.
pub(crate) async fn migrate(db: &Database) -> Result<Vec<String>, StoreError> {
    let owner = Uuid::new_v4().to_string();
    acquire(db, &owner).await?;
    let outcome = apply_pending(db).await;
    let released = release(db, &owner).await;
    let applied = outcome?;
    released?;
    Ok(applied)
}

async fn apply_pending(db: &Database) -> Result<Vec<String>, StoreError> {
    let mut applied = Vec::new();
    for step in pending(db).await? {
        apply(db, step).await.map_err(map_error)?;
        db.collection::<MigrationDoc>(MIGRATIONS)
            .insert_one(MigrationDoc {
                version: step.version,
                description: step.description.to_owned(),
                applied_at: bson_time(Utc::now()),
            })
            .await
            .map_err(map_error)?;
        tracing::info!(step = %step.label(), "applied MongoDB migration");
        applied.push(step.label());
    }
    Ok(applied)
}

/// Steps not recorded in `_migrations` yet, in order.
pub(crate) async fn pending(db: &Database) -> Result<Vec<Migration>, StoreError> {
    use futures::TryStreamExt;
    let versions: Vec<i64> = ALL.iter().map(|m| m.version).collect();
    let recorded: Vec<MigrationDoc> = db
        .collection::<MigrationDoc>(MIGRATIONS)
        .find(doc! { "_id": { "$in": versions } })
        .await
        .map_err(map_error)?
        .try_collect()
        .await
        .map_err(map_error)?;
    Ok(ALL
        .iter()
        .filter(|m| !recorded.iter().any(|r| r.version == m.version))
        .copied()
        .collect())
}

/// Creates the step's collections with their indexes; both are no-ops when
/// they already exist as asked.
async fn apply(db: &Database, step: Migration) -> Result<(), mongodb::error::Error> {
    for collection in step.collections {
        create_collection(db, collection.name).await?;
        if !collection.indexes.is_empty() {
            db.collection::<Document>(collection.name)
                .create_indexes(collection.indexes.iter().map(|index| index.model()))
                .await?;
        }
    }
    Ok(())
}

/// Creates `name`; an existing collection (code 48, NamespaceExists) is fine.
async fn create_collection(db: &Database, name: &str) -> Result<(), mongodb::error::Error> {
    match db.create_collection(name).await {
        Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 48) => {
            Ok(())
        }
        other => other,
    }
}

impl Index {
    fn model(&self) -> IndexModel {
        let (field, name, unique, expire_after) = match *self {
            Index::Plain { field, name } => (field, name, Some(false), None),
            Index::Unique { field, name } => (field, name, Some(true), None),
            Index::Expiry { name } => ("expires_at", name, None, Some(Duration::ZERO)),
        };
        IndexModel::builder()
            .keys(doc! { field: 1 })
            .options(
                IndexOptions::builder()
                    .name(name.to_owned())
                    .unique(unique)
                    .expire_after(expire_after)
                    .build(),
            )
            .build()
    }
}

/// Takes the lease: inserts it, or takes over one that expired. A held lease
/// makes the upsert collide on `_id` (duplicate key), and we wait.
async fn acquire(db: &Database, owner: &str) -> Result<(), StoreError> {
    let locks = db.collection::<Document>(MIGRATIONS);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::MAX);
        let taken = locks
            .find_one_and_update(
                doc! { "_id": LOCK_ID, "until": { "$lt": bson_time(now) } },
                doc! { "$set": { "until": bson_time(until), "owner": owner } },
            )
            .upsert(true)
            .await;
        match taken {
            Ok(_) => return Ok(()),
            Err(e) if is_duplicate_key(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) if is_duplicate_key(&e) => {
                return Err(StoreError::Unavailable(
                    "another process has held the MongoDB migration lock for too long".into(),
                ))
            }
            Err(e) => return Err(map_error(e)),
        }
    }
}

async fn release(db: &Database, owner: &str) -> Result<(), StoreError> {
    db.collection::<Document>(MIGRATIONS)
        .delete_one(doc! { "_id": LOCK_ID, "owner": owner })
        .await
        .map_err(map_error)?;
    Ok(())
}
