//! The audit log on MongoDB: one insert per record, one `find` per page
//! (filters on indexed fields, sorted by `_id`, a UUIDv7), one
//! `deleteMany` for retention.

use auth_core::store::{AuditStore, StoreError};
use auth_core::{AuditEvent, AuditQuery};
use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Document};
use mongodb::Collection;

use crate::documents::{bson_time, bson_uuid, AuditDoc, AUDIT_LOG};
use crate::errors::map_error;
use crate::{find_sorted, MongoStore};

impl MongoStore {
    fn audit_log(&self) -> Collection<AuditDoc> {
        self.db.collection(AUDIT_LOG)
    }
}

/// The query as a filter document (every value a typed scalar).
fn filter(query: &AuditQuery) -> Document {
    let mut filter = doc! {};
    let mut time = doc! {};
    if let Some(since) = query.since {
        time.insert("$gte", bson_time(since));
    }
    if let Some(until) = query.until {
        time.insert("$lt", bson_time(until));
    }
    if !time.is_empty() {
        filter.insert("time", time);
    }
    for (field, value) in [
        ("actor", &query.actor),
        ("action", &query.action),
        ("target", &query.target),
    ] {
        if let Some(value) = value {
            filter.insert(field, value.as_str());
        }
    }
    if let Some(after) = query.after {
        filter.insert("_id", doc! { "$gt": bson_uuid(after) });
    }
    filter
}

impl AuditStore for MongoStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.bounded(async {
            self.audit_log()
                .insert_one(AuditDoc::from(event))
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.bounded(async {
            let docs = find_sorted(
                &self.audit_log(),
                filter(query),
                doc! { "_id": 1 },
                Some(i64::from(query.limit)),
                None,
            )
            .await?;
            Ok(docs.into_iter().map(Into::into).collect())
        })
        .await
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = self
                .audit_log()
                .delete_many(doc! { "time": { "$lt": bson_time(before) } })
                .await
                .map_err(map_error)?;
            Ok(done.deleted_count)
        })
        .await
    }
}
