//! The outbox and one-time links on MongoDB.
//!
//! Without multi-document transactions, each operation orders its writes
//! so that a crash part-way fails closed: the account change first, the
//! message last (a crash between them loses the message, never sends one
//! about a change that did not happen); a link is marked used before its
//! change is applied (a crash between them spends the link for nothing:
//! the person asks for a new one). Claims and spending are single-document
//! conditional updates, atomic on their own.

use auth_core::store::{MailStore, StoreError, UniqueField};
use auth_core::{
    AccountChange, EmailLink, MailOutcome, NewUser, OutgoingMail, QueuedMail, TokenDigest,
};
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use mongodb::Collection;
use uuid::Uuid;

use crate::documents::{
    binary, bson_time, bson_uuid, LinkDoc, OutboxDoc, UserDoc, BROWSER_SESSIONS, EMAIL_LINKS,
    MAIL_OUTBOX,
};
use crate::errors::map_error;
use crate::MongoStore;

impl MongoStore {
    fn outbox(&self) -> Collection<OutboxDoc> {
        self.db.collection(MAIL_OUTBOX)
    }

    fn links(&self) -> Collection<LinkDoc> {
        self.db.collection(EMAIL_LINKS)
    }

    async fn enqueue(&self, mail: Option<&OutgoingMail>) -> Result<(), StoreError> {
        if let Some(mail) = mail {
            self.outbox()
                .insert_one(OutboxDoc::from(mail))
                .await
                .map_err(map_error)?;
        }
        Ok(())
    }

    /// A link, then the message that carries it (a crash between them leaves
    /// a link nobody received, which expires unused).
    async fn insert_link(&self, link: &EmailLink, mail: &OutgoingMail) -> Result<(), StoreError> {
        self.links()
            .insert_one(LinkDoc::from(link))
            .await
            .map_err(map_error)?;
        self.enqueue(Some(mail)).await
    }

    /// Revokes a user's active sessions but `keep` and deletes their browser
    /// sessions.
    pub(crate) async fn end_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let revoked = self.revoke_sessions_of(user_id, keep, now).await?;
        self.db
            .collection::<Document>(BROWSER_SESSIONS)
            .delete_many(doc! { "user_id": bson_uuid(user_id) })
            .await
            .map_err(map_error)?;
        Ok(revoked)
    }

    /// Applies a spent link's change; `false` when its user is gone.
    async fn apply(
        &self,
        user_id: Uuid,
        change: &AccountChange,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let id = bson_uuid(user_id);
        let users = self.users();
        let done = match change {
            AccountChange::VerifyEmail { email_key } => {
                users
                    .update_one(
                        doc! { "_id": id, "email_key": email_key },
                        doc! { "$set": { "email_verified": true } },
                    )
                    .await
                    .map_err(map_error)?;
                return Ok(true);
            }
            AccountChange::ResetPassword { password_hash } => {
                let done = users
                    .update_one(
                        doc! { "_id": id },
                        doc! { "$set": { "password_hash": password_hash } },
                    )
                    .await
                    .map_err(map_error)?;
                self.end_user_sessions(user_id, None, now).await?;
                done
            }
            AccountChange::ChangeEmail { email } => users
                .update_one(
                    doc! { "_id": id },
                    doc! { "$set": {
                        "email": email.as_str(),
                        "email_key": email.key(),
                        "email_verified": true,
                    } },
                )
                .await
                .map_err(map_error)?,
        };
        Ok(done.matched_count > 0)
    }
}

impl MailStore for MongoStore {
    async fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), StoreError> {
        self.bounded(self.enqueue(Some(mail))).await
    }

    async fn claim_mail(
        &self,
        claim: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        self.bounded(async {
            let now = bson_time(now);
            let mut claimed = Vec::new();
            // One conditional update per message: of two senders, only one
            // matches a free message.
            for _ in 0..limit {
                let won = self
                    .outbox()
                    .find_one_and_update(
                        doc! {
                            "finished_at": Bson::Null,
                            "due_at": { "$lte": now },
                            "$or": [
                                { "held_until": Bson::Null },
                                { "held_until": { "$lte": now } },
                            ],
                        },
                        doc! {
                            "$set": { "claim": bson_uuid(claim), "held_until": bson_time(lease_until) },
                            "$inc": { "attempts": 1 },
                        },
                    )
                    .sort(doc! { "created_at": 1, "_id": 1 })
                    .return_document(ReturnDocument::After)
                    .await
                    .map_err(map_error)?;
                match won {
                    Some(doc) => claimed.push(doc.into_queued(claim)),
                    None => break,
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn finish_mail(
        &self,
        id: Uuid,
        claim: Uuid,
        outcome: &MailOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = match outcome {
            MailOutcome::Retry { at, error } => doc! { "$set": {
                "claim": Bson::Null, "held_until": Bson::Null,
                "due_at": bson_time(*at), "last_error": error,
            } },
            MailOutcome::Sent => doc! { "$set": {
                "claim": Bson::Null, "held_until": Bson::Null,
                "finished_at": bson_time(now), "outcome": "sent",
                "subject": "", "text_body": "", "html_body": "",
            } },
            MailOutcome::GaveUp { error } => doc! { "$set": {
                "claim": Bson::Null, "held_until": Bson::Null,
                "finished_at": bson_time(now), "outcome": "gave_up", "last_error": error,
                "subject": "", "text_body": "", "html_body": "",
            } },
        };
        self.bounded(async {
            let done = self
                .outbox()
                .update_one(
                    doc! { "_id": bson_uuid(id), "claim": bson_uuid(claim), "finished_at": Bson::Null },
                    update,
                )
                .await
                .map_err(map_error)?;
            Ok(done.matched_count > 0)
        })
        .await
    }

    async fn insert_user_with_link(
        &self,
        user: &NewUser,
        link: &EmailLink,
        mail: &OutgoingMail,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            self.users()
                .insert_one(UserDoc::from(user))
                .await
                .map_err(map_error)?;
            self.insert_link(link, mail).await
        })
        .await
    }

    async fn create_email_link(
        &self,
        link: &EmailLink,
        mail: &OutgoingMail,
    ) -> Result<(), StoreError> {
        self.bounded(self.insert_link(link, mail)).await
    }

    async fn find_email_link(&self, digest: &TokenDigest) -> Result<Option<EmailLink>, StoreError> {
        self.bounded(async {
            let found = self
                .links()
                .find_one(doc! { "_id": binary(digest) })
                .await
                .map_err(map_error)?;
            found.map(EmailLink::try_from).transpose()
        })
        .await
    }

    async fn use_email_link(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        change: &AccountChange,
        mail: Option<&OutgoingMail>,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let at = bson_time(now);
            let won = self
                .links()
                .find_one_and_update(
                    doc! { "_id": binary(digest), "used_at": Bson::Null, "expires_at": { "$gt": at } },
                    doc! { "$set": { "used_at": at } },
                )
                .await
                .map_err(map_error)?;
            let Some(link) = won else {
                return Ok(false);
            };
            let applied = match self
                .apply(crate::documents::uuid(link.user_id), change, now)
                .await
            {
                Err(StoreError::Conflict(UniqueField::Email)) => {
                    // The new address was taken meanwhile: give the link back.
                    self.links()
                        .update_one(
                            doc! { "_id": binary(digest) },
                            doc! { "$set": { "used_at": Bson::Null } },
                        )
                        .await
                        .map_err(map_error)?;
                    return Err(StoreError::Conflict(UniqueField::Email));
                }
                other => other?,
            };
            if applied {
                self.enqueue(mail).await?;
            }
            Ok(applied)
        })
        .await
    }

    async fn replace_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
        notice: Option<&OutgoingMail>,
    ) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = self
                .users()
                .update_one(
                    doc! { "_id": bson_uuid(user_id) },
                    doc! { "$set": { "password_hash": password_hash } },
                )
                .await
                .map_err(map_error)?;
            if done.matched_count == 0 {
                return Err(StoreError::NotFound);
            }
            let revoked = self.end_user_sessions(user_id, keep, now).await?;
            self.enqueue(notice).await?;
            Ok(revoked)
        })
        .await
    }

    async fn purge_mail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(async {
            let before = bson_time(before);
            let mail = self
                .outbox()
                .delete_many(doc! { "finished_at": { "$lt": before } })
                .await
                .map_err(map_error)?;
            let links = self
                .links()
                .delete_many(doc! { "$or": [
                    { "used_at": { "$lt": before } },
                    { "used_at": Bson::Null, "expires_at": { "$lt": before } },
                ] })
                .await
                .map_err(map_error)?;
            Ok(mail.deleted_count + links.deleted_count)
        })
        .await
    }
}
