//! Second factors, recovery codes and ceremonies on MongoDB.
//!
//! The atomic steps are single-document operations: a TOTP step advances
//! with a conditional `updateOne` (`last_step < step`), a recovery code is
//! spent by deleting its document (keyed by user and digest), a ceremony is
//! taken with `findOneAndDelete`. Uniqueness (one app per account, one
//! account per passkey) is one unique index on a derived `unique_key`.

use auth_core::store::{FactorStore, StoreError};
use auth_core::{BrowserSession, Ceremony, Factor, Session, TokenDigest};
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson};
use mongodb::Collection;
use uuid::Uuid;

use crate::documents::{
    bson_time, bson_uuid, recovery_code_key, CeremonyDoc, FactorDoc, RecoveryCodeDoc, CEREMONIES,
    FACTORS, RECOVERY_CODES,
};
use crate::errors::map_error;
use crate::{find_sorted, MongoStore};

impl MongoStore {
    fn factors(&self) -> Collection<FactorDoc> {
        self.db.collection(FACTORS)
    }

    fn recovery_codes(&self) -> Collection<RecoveryCodeDoc> {
        self.db.collection(RECOVERY_CODES)
    }

    fn ceremonies(&self) -> Collection<CeremonyDoc> {
        self.db.collection(CEREMONIES)
    }

    /// [`StoreError::NotFound`] unless the user exists.
    async fn require_user(&self, user_id: Uuid) -> Result<(), StoreError> {
        let found = self
            .users()
            .count_documents(doc! { "_id": bson_uuid(user_id) })
            .await
            .map_err(map_error)?;
        if found == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes the user's recovery codes when they have no factor left.
    async fn drop_orphan_codes(&self, user_id: Uuid) -> Result<(), StoreError> {
        let left = self
            .factors()
            .count_documents(doc! { "user_id": bson_uuid(user_id) })
            .await
            .map_err(map_error)?;
        if left == 0 {
            self.recovery_codes()
                .delete_many(doc! { "user_id": bson_uuid(user_id) })
                .await
                .map_err(map_error)?;
        }
        Ok(())
    }
}

impl FactorStore for MongoStore {
    async fn add_factor(&self, factor: &Factor) -> Result<(), StoreError> {
        self.bounded(async {
            self.require_user(factor.user_id).await?;
            self.factors()
                .insert_one(FactorDoc::from(factor))
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn list_factors(&self, user_id: Uuid) -> Result<Vec<Factor>, StoreError> {
        self.bounded(async {
            let docs = find_sorted(
                &self.factors(),
                doc! { "user_id": bson_uuid(user_id) },
                doc! { "created_at": 1, "_id": 1 },
                None,
                None,
            )
            .await?;
            docs.into_iter().map(TryInto::try_into).collect()
        })
        .await
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Factor>, StoreError> {
        self.bounded(async {
            self.factors()
                .find_one(doc! { "credential_id": credential_id })
                .await
                .map_err(map_error)?
                .map(TryInto::try_into)
                .transpose()
        })
        .await
    }

    async fn advance_totp_step(
        &self,
        factor_id: Uuid,
        step: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .factors()
                .update_one(
                    doc! { "_id": bson_uuid(factor_id), "last_step": { "$lt": step } },
                    doc! { "$set": { "last_step": step, "last_used_at": bson_time(now) } },
                )
                .await
                .map_err(map_error)?;
            Ok(done.modified_count == 1)
        })
        .await
    }

    async fn record_passkey_use(
        &self,
        factor_id: Uuid,
        data: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .factors()
                .update_one(
                    doc! { "_id": bson_uuid(factor_id) },
                    doc! { "$set": { "data": data, "last_used_at": bson_time(now) } },
                )
                .await
                .map_err(map_error)?;
            Ok(done.matched_count == 1)
        })
        .await
    }

    async fn remove_factor(&self, user_id: Uuid, factor_id: Uuid) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .factors()
                .delete_one(doc! { "_id": bson_uuid(factor_id), "user_id": bson_uuid(user_id) })
                .await
                .map_err(map_error)?;
            self.drop_orphan_codes(user_id).await?;
            Ok(done.deleted_count == 1)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        digests: &[TokenDigest],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            self.require_user(user_id).await?;
            // Old codes go first: a crash in between leaves none rather than
            // old ones the person believes replaced.
            self.recovery_codes()
                .delete_many(doc! { "user_id": bson_uuid(user_id) })
                .await
                .map_err(map_error)?;
            if digests.is_empty() {
                return Ok(());
            }
            let docs = digests.iter().map(|digest| RecoveryCodeDoc {
                key: recovery_code_key(user_id, digest),
                user_id: bson_uuid(user_id),
                created_at: bson_time(now),
            });
            self.recovery_codes()
                .insert_many(docs)
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        digest: &TokenDigest,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .recovery_codes()
                .delete_one(doc! { "_id": recovery_code_key(user_id, digest) })
                .await
                .map_err(map_error)?;
            Ok(done.deleted_count == 1)
        })
        .await
    }

    async fn count_recovery_codes(&self, user_id: Uuid) -> Result<u64, StoreError> {
        self.bounded(async {
            self.recovery_codes()
                .count_documents(doc! { "user_id": bson_uuid(user_id) })
                .await
                .map_err(map_error)
        })
        .await
    }

    async fn reset_factors(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(async {
            self.require_user(user_id).await?;
            // Sessions end first: whatever happens next, nobody stays in.
            self.end_user_sessions(user_id, None, now).await?;
            let done = self
                .factors()
                .delete_many(doc! { "user_id": bson_uuid(user_id) })
                .await
                .map_err(map_error)?;
            self.recovery_codes()
                .delete_many(doc! { "user_id": bson_uuid(user_id) })
                .await
                .map_err(map_error)?;
            Ok(done.deleted_count)
        })
        .await
    }

    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        self.bounded(async {
            self.ceremonies()
                .insert_one(CeremonyDoc::from(ceremony))
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn find_ceremony(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        self.bounded(async {
            self.ceremonies()
                .find_one(doc! {
                    "_id": crate::documents::binary(digest),
                    "expires_at": { "$gt": bson_time(now) },
                })
                .await
                .map_err(map_error)?
                .map(TryInto::try_into)
                .transpose()
        })
        .await
    }

    async fn take_ceremony(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        self.bounded(async {
            let taken = self
                .ceremonies()
                .find_one_and_delete(doc! { "_id": crate::documents::binary(digest) })
                .await
                .map_err(map_error)?;
            let ceremony: Option<Ceremony> = taken.map(TryInto::try_into).transpose()?;
            Ok(ceremony.filter(|c| c.expires_at > now))
        })
        .await
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Session>, Vec<BrowserSession>), StoreError> {
        self.bounded(async {
            let sessions: Vec<Session> = find_sorted(
                &self.sessions(),
                doc! {
                    "user_id": bson_uuid(user_id),
                    "revoked_at": Bson::Null,
                    "expires_at": { "$gt": bson_time(now) },
                },
                doc! { "created_at": -1, "_id": -1 },
                None,
                None,
            )
            .await?
            .into_iter()
            .map(|doc| doc.into_session().0)
            .collect();
            let browsers = find_sorted(
                &self.browser_sessions(),
                doc! {
                    "user_id": bson_uuid(user_id),
                    "expires_at": { "$gt": bson_time(now) },
                    "idle_expires_at": { "$gt": bson_time(now) },
                },
                doc! { "created_at": -1, "id": -1 },
                None,
                None,
            )
            .await?;
            let browsers = browsers
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?;
            Ok((sessions, browsers))
        })
        .await
    }
}
