//! The MongoDB store, for teams that already run MongoDB.
//!
//! Guarantees match the SQL stores': case-insensitive unique usernames and
//! emails by unique indexes on the normalised keys, single-use refresh
//! tokens by one conditional `findOneAndUpdate`, lossless throttle counts by
//! compare-and-set on a version field. No multi-document transactions are
//! needed, so a standalone `mongod` works as well as a replica set; where a
//! step spans two documents, the order is chosen so that a crash between
//! them fails closed (a token used but no successor: the client logs in
//! again), never open.

use std::future::Future;
use std::time::Duration;

use auth_core::store::{
    ClientStore, FlowStore, Lifecycle, SessionStore, Store, StoreError, StoreSettings,
    ThrottleStore, ThrottleUpdate, UserStore,
};
use auth_core::{
    AuthorizationCode, BrowserSession, Client as OAuthClient, CodeRedemption, Consent, Consumed,
    NewRefreshToken, NewUser, PendingAuthorization, RefreshTokenRecord, Session, ThrottleState,
    TokenDigest, User, UserQuery, UserSummary,
};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{ClientOptions, ReturnDocument};
use mongodb::{Client, Collection, Database};
use uuid::Uuid;

mod audit;
mod documents;
mod errors;
mod factors;
mod mail;
mod migrations;
#[cfg(feature = "test-support")]
pub mod test_support;

use documents::{
    binary, bson_time, bson_uuid, SessionDoc, ThrottleDoc, TokenDoc, UserDoc, UserSummaryDoc,
    LOGIN_THROTTLE, REFRESH_TOKENS, SESSIONS, USERS,
};
use documents::{
    consent_key, BrowserSessionDoc, ClientDoc, CodeDoc, ConsentDoc, RequestDoc,
    AUTHORIZATION_CODES, AUTHORIZATION_REQUESTS, BROWSER_SESSIONS, CLIENTS, CONSENTS,
};
use errors::{is_duplicate_key, map_error, timed_out};

/// The database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "tessera";

/// How many sessions one purge round deletes (bounds the `$in` lists).
const PURGE_BATCH: i64 = 1000;

/// Cheap to clone (a client handle).
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    call_timeout: Duration,
}

impl MongoStore {
    /// Connects and proves the server answers. A server that is down fails
    /// here with [`StoreError::Unavailable`]; retrying is the caller's policy.
    ///
    /// `settings.url` is any MongoDB connection string; its path names the
    /// database ([`DEFAULT_DATABASE`] when absent). `acquire_timeout` bounds
    /// the wait for a usable server (and a connection); a whole call is
    /// bounded by twice it, so a server that stops answering mid-call is a
    /// 503, never a hang.
    pub async fn connect(settings: &StoreSettings) -> Result<Self, StoreError> {
        let mut options = ClientOptions::parse(settings.url.expose())
            .await
            .map_err(|e| {
                if matches!(
                    e.kind.as_ref(),
                    mongodb::error::ErrorKind::DnsResolve { .. }
                ) {
                    map_error(e)
                } else {
                    StoreError::Other(format!("invalid MongoDB URL: {e}"))
                }
            })?;
        options.app_name.get_or_insert_with(|| "tessera".into());
        options.max_pool_size = Some(settings.max_connections.max(1));
        options.server_selection_timeout = Some(settings.acquire_timeout);
        options
            .connect_timeout
            .get_or_insert(settings.acquire_timeout);
        let database = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(map_error)?;
        let store = Self {
            db: client.database(&database),
            client,
            call_timeout: settings.acquire_timeout.saturating_mul(2),
        };
        store.ping().await?;
        Ok(store)
    }

    /// The database this store uses.
    pub fn database_name(&self) -> &str {
        self.db.name()
    }

    /// Closes the client's connections.
    pub async fn close(&self) {
        self.client.clone().shutdown().await;
    }

    fn users(&self) -> Collection<UserDoc> {
        self.db.collection(USERS)
    }

    fn sessions(&self) -> Collection<SessionDoc> {
        self.db.collection(SESSIONS)
    }

    fn tokens(&self) -> Collection<TokenDoc> {
        self.db.collection(REFRESH_TOKENS)
    }

    fn throttle(&self) -> Collection<ThrottleDoc> {
        self.db.collection(LOGIN_THROTTLE)
    }

    fn clients(&self) -> Collection<ClientDoc> {
        self.db.collection(CLIENTS)
    }

    fn codes(&self) -> Collection<CodeDoc> {
        self.db.collection(AUTHORIZATION_CODES)
    }

    fn browser_sessions(&self) -> Collection<BrowserSessionDoc> {
        self.db.collection(BROWSER_SESSIONS)
    }

    fn consents(&self) -> Collection<ConsentDoc> {
        self.db.collection(CONSENTS)
    }

    /// Runs one store call, bounded by the call timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.call_timeout, call)
            .await
            .unwrap_or_else(|_| Err(timed_out(self.call_timeout)))
    }

    /// Sets one field of an account; [`StoreError::NotFound`] when absent.
    async fn set_user_field(&self, id: Uuid, field: &str, value: Bson) -> Result<(), StoreError> {
        self.set_user_fields(id, doc! { field: value }).await
    }

    /// `$set`s `fields` on one account; [`StoreError::NotFound`] when absent.
    async fn set_user_fields(&self, id: Uuid, fields: Document) -> Result<(), StoreError> {
        let done = self
            .users()
            .update_one(doc! { "_id": bson_uuid(id) }, doc! { "$set": fields })
            .await
            .map_err(map_error)?;
        if done.matched_count == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Revokes every active session of a user but `keep`; how many.
    async fn revoke_sessions_of(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut filter = doc! { "user_id": bson_uuid(user_id), "revoked_at": Bson::Null };
        if let Some(keep) = keep {
            filter.insert("_id", doc! { "$ne": bson_uuid(keep) });
        }
        let done = self
            .sessions()
            .update_many(filter, doc! { "$set": { "revoked_at": bson_time(now) } })
            .await
            .map_err(map_error)?;
        Ok(done.modified_count)
    }

    async fn find_user(&self, filter: Document) -> Result<Option<User>, StoreError> {
        let found = self.users().find_one(filter).await.map_err(map_error)?;
        Ok(found.map(User::from))
    }

    /// The session matching `filter` with its user, in one round trip.
    /// A session whose user is gone reads as absent.
    async fn session_with_user(
        &self,
        filter: Document,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let pipeline = [
            doc! { "$match": filter },
            doc! { "$limit": 1 },
            doc! { "$lookup": { "from": USERS, "localField": "user_id", "foreignField": "_id", "as": "user" } },
            doc! { "$unwind": "$user" },
        ];
        let mut found = self
            .sessions()
            .aggregate(pipeline)
            .with_type::<SessionDoc>()
            .await
            .map_err(map_error)?;
        let Some(doc) = found.try_next().await.map_err(map_error)? else {
            return Ok(None);
        };
        match doc.into_session() {
            (session, Some(user)) => Ok(Some((session, user))),
            (_, None) => Ok(None),
        }
    }

    async fn token_with_session(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(RefreshTokenRecord, Session, User)>, StoreError> {
        let Some(token) = self
            .tokens()
            .find_one(doc! { "_id": binary(digest) })
            .await
            .map_err(map_error)?
        else {
            return Ok(None);
        };
        let session = self
            .session_with_user(doc! { "_id": token.session_id })
            .await?;
        match session {
            Some((session, user)) => Ok(Some((token.try_into()?, session, user))),
            None => Ok(None),
        }
    }

    /// Deletes the sessions matching `filter` and their tokens, in batches.
    /// Tokens go first, so an interrupted purge leaves no token without a
    /// session to find it by.
    async fn delete_sessions(&self, filter: Document) -> Result<u64, StoreError> {
        let ids_only = self.db.collection::<Document>(SESSIONS);
        let mut deleted = 0;
        loop {
            let ids: Vec<Bson> = ids_only
                .find(filter.clone())
                .projection(doc! { "_id": 1 })
                .limit(PURGE_BATCH)
                .await
                .map_err(map_error)?
                .try_collect::<Vec<Document>>()
                .await
                .map_err(map_error)?
                .into_iter()
                .filter_map(|mut d| d.remove("_id"))
                .collect();
            if ids.is_empty() {
                return Ok(deleted);
            }
            self.tokens()
                .delete_many(doc! { "session_id": { "$in": ids.clone() } })
                .await
                .map_err(map_error)?;
            deleted += self
                .sessions()
                .delete_many(doc! { "_id": { "$in": ids } })
                .await
                .map_err(map_error)?
                .deleted_count;
        }
    }
}

impl UserStore for MongoStore {
    async fn insert_user(&self, user: &NewUser) -> Result<(), StoreError> {
        self.bounded(async {
            self.users()
                .insert_one(UserDoc::from(user))
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.bounded(self.find_user(doc! { "_id": bson_uuid(id) }))
            .await
    }

    async fn find_user_by_username(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.bounded(self.find_user(doc! { "username_key": username_key }))
            .await
    }

    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        self.bounded(self.find_user(doc! { "email_key": email_key }))
            .await
    }

    async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
        self.bounded(self.set_user_field(id, "password_hash", password_hash.into()))
            .await
    }

    async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<(), StoreError> {
        self.bounded(self.set_user_field(id, "disabled", disabled.into()))
            .await
    }

    async fn delete_user(&self, id: Uuid) -> Result<bool, StoreError> {
        self.bounded(async {
            // The account goes first: from then on none of its sessions is
            // active (the session read joins the user), whatever the rest does.
            let done = self
                .users()
                .delete_one(doc! { "_id": bson_uuid(id) })
                .await
                .map_err(map_error)?;
            self.delete_sessions(doc! { "user_id": bson_uuid(id) })
                .await?;
            for collection in [
                BROWSER_SESSIONS,
                CONSENTS,
                documents::EMAIL_LINKS,
                documents::FACTORS,
                documents::RECOVERY_CODES,
                documents::CEREMONIES,
            ] {
                self.db
                    .collection::<Document>(collection)
                    .delete_many(doc! { "user_id": bson_uuid(id) })
                    .await
                    .map_err(map_error)?;
            }
            Ok(done.deleted_count > 0)
        })
        .await
    }

    async fn update_email(
        &self,
        id: Uuid,
        email: &str,
        email_key: &str,
        verified: bool,
    ) -> Result<(), StoreError> {
        self.bounded(self.set_user_fields(
            id,
            doc! { "email": email, "email_key": email_key, "email_verified": verified },
        ))
        .await
    }

    async fn search_users(&self, query: &UserQuery) -> Result<Vec<UserSummary>, StoreError> {
        self.bounded(async {
            let docs = find_sorted(
                &self.db.collection::<UserSummaryDoc>(USERS),
                user_search_filter(query),
                doc! { "username_key": 1 },
                Some(i64::from(query.limit)),
                Some(UserSummaryDoc::projection()),
            )
            .await?;
            Ok(docs.into_iter().map(UserSummary::from).collect())
        })
        .await
    }
}

/// The documents of `collection` that match `filter`, in `sort` order, at
/// most `limit` of them, with only the fields `projection` keeps (all when
/// `None`): the one shape of every list this store reads.
pub(crate) async fn find_sorted<T>(
    collection: &Collection<T>,
    filter: Document,
    sort: Document,
    limit: Option<i64>,
    projection: Option<Document>,
) -> Result<Vec<T>, StoreError>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    let mut find = collection.find(filter).sort(sort);
    if let Some(limit) = limit {
        find = find.limit(limit);
    }
    if let Some(projection) = projection {
        find = find.projection(projection);
    }
    find.await
        .map_err(map_error)?
        .try_collect()
        .await
        .map_err(map_error)
}

/// The account list's filter: after the cursor, and a prefix as the byte
/// range `[p, p + U+10FFFF)` on either key (MongoDB compares strings by
/// their UTF-8 bytes, so the unique key indexes serve both).
fn user_search_filter(query: &UserQuery) -> Document {
    let mut filter = Document::new();
    if let Some(after) = &query.after {
        filter.insert("username_key", doc! { "$gt": after.as_str() });
    }
    if let Some(prefix) = &query.prefix {
        let range = doc! { "$gte": prefix.as_str(), "$lt": format!("{prefix}{}", char::MAX) };
        filter.insert(
            "$or",
            vec![
                doc! { "username_key": range.clone() },
                doc! { "email_key": range },
            ],
        );
    }
    filter
}

/// Matches sessions that are active at `now`.
fn active_session(id: mongodb::bson::Uuid, now: DateTime<Utc>) -> Document {
    doc! { "_id": id, "revoked_at": Bson::Null, "expires_at": { "$gt": bson_time(now) } }
}

impl SessionStore for MongoStore {
    async fn create_session(
        &self,
        session: &Session,
        first_token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            // MongoDB has no foreign keys. A user deleted right after this
            // check leaves a session that no read returns (they join the
            // user) and the purge removes.
            let user_exists = self
                .db
                .collection::<Document>(USERS)
                .find_one(doc! { "_id": bson_uuid(session.user_id) })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(map_error)?
                .is_some();
            if !user_exists {
                return Err(StoreError::NotFound);
            }
            let doc = SessionDoc::from(session);
            let session_id = doc.id;
            self.sessions().insert_one(doc).await.map_err(map_error)?;
            self.tokens()
                .insert_one(TokenDoc::new(first_token, session_id))
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn find_active_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>, StoreError> {
        self.bounded(self.session_with_user(active_session(bson_uuid(id), now)))
            .await
    }

    async fn consume_refresh_token(
        &self,
        digest: &TokenDigest,
        successor: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Consumed, StoreError> {
        self.bounded(async {
            // The single-use step: of concurrent callers, exactly one matches
            // `used_at: null` and gets the document back.
            let won = self
                .tokens()
                .find_one_and_update(
                    doc! {
                        "_id": binary(digest),
                        "used_at": Bson::Null,
                        "expires_at": { "$gt": bson_time(now) },
                    },
                    doc! { "$set": {
                        "used_at": bson_time(now),
                        "successor_digest": binary(&successor.digest),
                        "successor_sealed": successor.sealed.as_deref().map(binary),
                    } },
                )
                .await
                .map_err(map_error)?;
            let Some(token) = won else {
                let found = self.token_with_session(digest).await?;
                return Ok(Consumed::not_rotated(found, now));
            };
            // Slide the session, only if it is still active: a session
            // revoked meanwhile makes this rotation void.
            let session = self
                .sessions()
                .find_one_and_update(
                    active_session(token.session_id, now),
                    doc! { "$set": { "expires_at": bson_time(successor.expires_at) } },
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_error)?;
            let Some(session) = session else {
                return Ok(Consumed::Invalid);
            };
            self.tokens()
                .insert_one(TokenDoc::new(successor, token.session_id))
                .await
                .map_err(map_error)?;
            let (session, _) = session.into_session();
            match self
                .find_user(doc! { "_id": bson_uuid(session.user_id) })
                .await?
            {
                Some(user) => Ok(Consumed::Rotated { session, user }),
                None => Ok(Consumed::Invalid),
            }
        })
        .await
    }

    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(RefreshTokenRecord, Session, User)>, StoreError> {
        self.bounded(self.token_with_session(digest)).await
    }

    async fn revoke_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .sessions()
                .update_one(
                    doc! { "_id": bson_uuid(id), "revoked_at": Bson::Null },
                    doc! { "$set": { "revoked_at": bson_time(now) } },
                )
                .await
                .map_err(map_error)?;
            Ok(done.matched_count > 0)
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.bounded(self.revoke_sessions_of(user_id, keep, now))
            .await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = bson_time(now);
        self.bounded(async {
            let sessions = self
                .delete_sessions(doc! { "$or": [
                    { "expires_at": { "$lte": now } },
                    { "revoked_at": { "$ne": Bson::Null } },
                ] })
                .await?;
            self.tokens()
                .delete_many(doc! { "expires_at": { "$lte": now } })
                .await
                .map_err(map_error)?;
            Ok(sessions)
        })
        .await
    }
}

impl ThrottleStore for MongoStore {
    async fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        self.bounded(async {
            let found = self
                .throttle()
                .find_one(doc! { "_id": key })
                .await
                .map_err(map_error)?;
            Ok(found.map(Into::into))
        })
        .await
    }

    async fn update_throttle<F: ThrottleUpdate>(
        &self,
        key: &str,
        update: F,
    ) -> Result<ThrottleState, StoreError> {
        self.bounded(async {
            // Compare-and-set: read the state and its version, write only if
            // the version is unchanged, otherwise read again. Every
            // concurrent update lands, none is lost. The call timeout bounds
            // the retries.
            loop {
                let current = self
                    .throttle()
                    .find_one(doc! { "_id": key })
                    .await
                    .map_err(map_error)?;
                match current {
                    None => {
                        let next = update(None);
                        match self
                            .throttle()
                            .insert_one(ThrottleDoc::new(key, &next, 1))
                            .await
                        {
                            Ok(_) => return Ok(next),
                            Err(e) if is_duplicate_key(&e) => continue,
                            Err(e) => return Err(map_error(e)),
                        }
                    }
                    Some(doc) => {
                        let version = doc.version;
                        let next = update(Some(doc.into()));
                        let done = self
                            .throttle()
                            .replace_one(
                                doc! { "_id": key, "version": version },
                                ThrottleDoc::new(key, &next, version + 1),
                            )
                            .await
                            .map_err(map_error)?;
                        if done.matched_count == 1 {
                            return Ok(next);
                        }
                    }
                }
                tokio::task::yield_now().await;
            }
        })
        .await
    }

    async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        self.bounded(async {
            self.throttle()
                .delete_one(doc! { "_id": key })
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn purge_throttle(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = self
                .throttle()
                .delete_many(doc! {
                    "window_started": { "$lt": bson_time(stale_before) },
                    "$or": [
                        { "locked_until": Bson::Null },
                        { "locked_until": { "$lte": bson_time(now) } },
                    ],
                })
                .await
                .map_err(map_error)?;
            Ok(done.deleted_count)
        })
        .await
    }
}

impl ClientStore for MongoStore {
    async fn insert_client(&self, client: &OAuthClient) -> Result<(), StoreError> {
        self.bounded(async {
            self.clients()
                .insert_one(ClientDoc::from(client))
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn find_client(&self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        self.bounded(async {
            self.clients()
                .find_one(doc! { "_id": id })
                .await
                .map_err(map_error)?
                .map(TryInto::try_into)
                .transpose()
        })
        .await
    }

    async fn list_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        self.bounded(async {
            let docs = find_sorted(&self.clients(), doc! {}, doc! { "_id": 1 }, None, None).await?;
            docs.into_iter().map(TryInto::try_into).collect()
        })
        .await
    }

    async fn update_client(&self, client: &OAuthClient) -> Result<(), StoreError> {
        self.bounded(async {
            let mut replacement = ClientDoc::from(client);
            let Some(stored) = self
                .clients()
                .find_one(doc! { "_id": &client.id })
                .await
                .map_err(map_error)?
            else {
                return Err(StoreError::NotFound);
            };
            replacement.created_at = stored.created_at;
            let done = self
                .clients()
                .replace_one(doc! { "_id": &client.id }, replacement)
                .await
                .map_err(map_error)?;
            if done.matched_count == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .clients()
                .delete_one(doc! { "_id": id })
                .await
                .map_err(map_error)?;
            Ok(done.deleted_count > 0)
        })
        .await
    }
}

impl FlowStore for MongoStore {
    async fn insert_authorization_request(
        &self,
        request: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        let doc = RequestDoc::new(request)?;
        self.bounded(async {
            self.db
                .collection::<RequestDoc>(AUTHORIZATION_REQUESTS)
                .insert_one(doc)
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn find_authorization_request(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        self.bounded(async {
            self.db
                .collection::<RequestDoc>(AUTHORIZATION_REQUESTS)
                .find_one(doc! { "_id": bson_uuid(id), "expires_at": { "$gt": bson_time(now) } })
                .await
                .map_err(map_error)?
                .map(TryInto::try_into)
                .transpose()
        })
        .await
    }

    async fn delete_authorization_request(&self, id: Uuid) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .db
                .collection::<Document>(AUTHORIZATION_REQUESTS)
                .delete_one(doc! { "_id": bson_uuid(id) })
                .await
                .map_err(map_error)?;
            Ok(done.deleted_count > 0)
        })
        .await
    }

    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let doc = CodeDoc::new(code)?;
        self.bounded(async {
            self.codes().insert_one(doc).await.map_err(map_error)?;
            Ok(())
        })
        .await
    }

    /// One conditional `findOneAndUpdate`: the server decides the winner.
    async fn redeem_authorization_code(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<CodeRedemption, StoreError> {
        self.bounded(async {
            let won = self
                .codes()
                .find_one_and_update(
                    doc! {
                        "_id": binary(digest),
                        "used_at": Bson::Null,
                        "expires_at": { "$gt": bson_time(now) },
                    },
                    doc! { "$set": { "used_at": bson_time(now) } },
                )
                .await
                .map_err(map_error)?;
            if let Some(code) = won {
                return Ok(CodeRedemption::Redeemed(Box::new(code.try_into()?)));
            }
            let used = self
                .codes()
                .find_one(doc! { "_id": binary(digest), "used_at": { "$ne": Bson::Null } })
                .await
                .map_err(map_error)?;
            Ok(match used {
                Some(code) => CodeRedemption::AlreadyUsed {
                    session_id: documents::uuid(code.session_id),
                },
                None => CodeRedemption::Invalid,
            })
        })
        .await
    }

    async fn create_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        self.bounded(async {
            let user = self
                .users()
                .find_one(doc! { "_id": bson_uuid(session.user_id) })
                .await
                .map_err(map_error)?;
            if user.is_none() {
                return Err(StoreError::NotFound);
            }
            self.browser_sessions()
                .insert_one(BrowserSessionDoc::from(session))
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn touch_browser_session(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        idle_until: DateTime<Utc>,
    ) -> Result<Option<(BrowserSession, User)>, StoreError> {
        self.bounded(async {
            let touched = self
                .browser_sessions()
                .find_one_and_update(
                    doc! {
                        "_id": binary(digest),
                        "idle_expires_at": { "$gt": bson_time(now) },
                        "expires_at": { "$gt": bson_time(now) },
                    },
                    doc! { "$set": { "idle_expires_at": bson_time(idle_until) } },
                )
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_error)?;
            let Some(session) = touched else {
                return Ok(None);
            };
            let session = BrowserSession::try_from(session)?;
            let user = self
                .users()
                .find_one(doc! { "_id": bson_uuid(session.user_id) })
                .await
                .map_err(map_error)?;
            Ok(user.map(|user| (session, User::from(user))))
        })
        .await
    }

    async fn end_browser_session(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = self
                .browser_sessions()
                .delete_one(doc! { "_id": binary(digest) })
                .await
                .map_err(map_error)?;
            Ok(done.deleted_count > 0)
        })
        .await
    }

    async fn sign_out_browser(&self, id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(async {
            self.browser_sessions()
                .delete_one(doc! { "id": bson_uuid(id) })
                .await
                .map_err(map_error)?;
            let done = self
                .sessions()
                .update_many(
                    doc! { "browser_session_id": bson_uuid(id), "revoked_at": Bson::Null },
                    doc! { "$set": { "revoked_at": bson_time(now) } },
                )
                .await
                .map_err(map_error)?;
            Ok(done.modified_count)
        })
        .await
    }

    async fn find_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.bounded(async {
            Ok(self
                .consents()
                .find_one(doc! { "_id": consent_key(user_id, client_id) })
                .await
                .map_err(map_error)?
                .map(|consent| consent.scope))
        })
        .await
    }

    async fn save_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            let user = self
                .users()
                .find_one(doc! { "_id": bson_uuid(user_id) })
                .await
                .map_err(map_error)?;
            if user.is_none() {
                return Err(StoreError::NotFound);
            }
            let consent = ConsentDoc {
                key: consent_key(user_id, client_id),
                user_id: bson_uuid(user_id),
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                granted_at: bson_time(now),
            };
            self.consents()
                .replace_one(doc! { "_id": &consent.key }, &consent)
                .upsert(true)
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn list_consents(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError> {
        self.bounded(async {
            let consents = find_sorted(
                &self.consents(),
                doc! { "user_id": bson_uuid(user_id) },
                doc! { "client_id": 1 },
                None,
                None,
            )
            .await?;
            Ok(consents.into_iter().map(Consent::from).collect())
        })
        .await
    }

    /// Two writes without a transaction: the consent goes first, so no new
    /// authorization is given without asking while the sessions are revoked.
    async fn revoke_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        self.bounded(async {
            let withdrawn = self
                .consents()
                .delete_one(doc! { "_id": consent_key(user_id, client_id) })
                .await
                .map_err(map_error)?;
            if withdrawn.deleted_count == 0 {
                return Ok(None);
            }
            let revoked = self
                .sessions()
                .update_many(
                    doc! {
                        "user_id": bson_uuid(user_id),
                        "client_id": client_id,
                        "revoked_at": Bson::Null,
                        "expires_at": { "$gt": bson_time(now) },
                    },
                    doc! { "$set": { "revoked_at": bson_time(now) } },
                )
                .await
                .map_err(map_error)?;
            Ok(Some(revoked.modified_count))
        })
        .await
    }

    async fn purge_flows(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.bounded(async {
            let past = doc! { "$lte": bson_time(now) };
            let mut purged = 0;
            for (collection, filter) in [
                (AUTHORIZATION_REQUESTS, doc! { "expires_at": past.clone() }),
                (AUTHORIZATION_CODES, doc! { "expires_at": past.clone() }),
                (
                    BROWSER_SESSIONS,
                    doc! { "$or": [ { "expires_at": past.clone() }, { "idle_expires_at": past.clone() } ] },
                ),
                (documents::CEREMONIES, doc! { "expires_at": past.clone() }),
            ] {
                let done = self
                    .db
                    .collection::<Document>(collection)
                    .delete_many(filter)
                    .await
                    .map_err(map_error)?;
                purged += done.deleted_count;
            }
            Ok(purged)
        })
        .await
    }
}

impl Lifecycle for MongoStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            self.db
                .run_command(doc! { "ping": 1 })
                .await
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        // Not bounded by the call timeout: a second process legitimately
        // waits for the first one's lease.
        migrations::migrate(&self.db).await
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        self.bounded(async {
            Ok(migrations::pending(&self.db)
                .await?
                .iter()
                .map(|m| m.label())
                .collect())
        })
        .await
    }
}

impl Store for MongoStore {
    fn backend_name(&self) -> &'static str {
        "mongo"
    }
}
