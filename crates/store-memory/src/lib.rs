//! The in-memory store: everything in one process's maps.
//!
//! A product feature, not a test double: `storage.backend = "memory"` runs a
//! complete Tessera that forgets everything on restart (demos, CI of
//! downstream apps). It is the reference adapter: one mutex makes every
//! check-and-write atomic, which is exactly the behaviour the database
//! adapters get from unique indexes and conditional updates.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use auth_core::store::{
    AuditStore, ClientStore, FactorStore, FlowStore, Lifecycle, MailStore, SessionStore, Store,
    StoreError, ThrottleStore, ThrottleUpdate, UniqueField, UserStore,
};
use auth_core::{
    AccountChange, AuditEvent, AuditQuery, AuthorizationCode, BrowserSession, Ceremony, Client,
    CodeRedemption, Consent, Consumed, EmailLink, Factor, FactorKind, MailOutcome, NewRefreshToken,
    NewUser, OutgoingMail, PendingAuthorization, QueuedMail, RefreshTokenRecord, Session,
    ThrottleState, TokenDigest, User, UserQuery, UserSummary,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Default)]
struct Tables {
    users: HashMap<Uuid, UserRow>,
    /// Ordered, so a page of the account list is a range scan.
    by_username: BTreeMap<String, Uuid>,
    by_email: HashMap<String, Uuid>,
    sessions: HashMap<Uuid, Session>,
    refresh_tokens: HashMap<TokenDigest, RefreshTokenRecord>,
    throttle: HashMap<String, ThrottleState>,
    clients: BTreeMap<String, Client>,
    authorization_requests: HashMap<Uuid, PendingAuthorization>,
    /// Each code with whether it was used.
    codes: HashMap<TokenDigest, (AuthorizationCode, bool)>,
    browser_sessions: HashMap<TokenDigest, BrowserSession>,
    /// (user, client) -> what was granted; ordered so a user's are adjacent.
    consents: BTreeMap<(Uuid, String), Consent>,
    outbox: HashMap<Uuid, OutboxRow>,
    email_links: HashMap<TokenDigest, EmailLink>,
    factors: BTreeMap<Uuid, Factor>,
    /// Recovery-code digests, per user.
    recovery_codes: HashMap<Uuid, Vec<TokenDigest>>,
    ceremonies: HashMap<TokenDigest, Ceremony>,
    /// The audit log, by id (UUIDv7: time order).
    audit: BTreeMap<Uuid, AuditEvent>,
}

/// A message with its delivery state.
struct OutboxRow {
    mail: OutgoingMail,
    attempts: u32,
    due_at: DateTime<Utc>,
    claim: Option<Uuid>,
    held_until: Option<DateTime<Utc>>,
    /// Sent or given up (the parts are erased then).
    finished_at: Option<DateTime<Utc>>,
}

impl Tables {
    fn insert_user(&mut self, user: &NewUser) -> Result<(), StoreError> {
        let username_key = user.username.key().to_owned();
        let email_key = user.email.key().to_owned();
        if self.by_username.contains_key(&username_key) {
            return Err(StoreError::Conflict(UniqueField::Username));
        }
        if self.by_email.contains_key(&email_key) {
            return Err(StoreError::Conflict(UniqueField::Email));
        }
        self.by_username.insert(username_key.clone(), user.id);
        self.by_email.insert(email_key.clone(), user.id);
        self.users.insert(
            user.id,
            UserRow {
                user: user.clone().into_user(),
                username_key,
                email_key,
            },
        );
        Ok(())
    }

    fn revoke_user_sessions(
        &mut self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> u64 {
        self.revoke_sessions_where(now, |session| {
            session.user_id == user_id && Some(session.id) != keep
        })
    }

    /// Revokes, at `now`, every unrevoked session `which` picks; how many.
    fn revoke_sessions_where(
        &mut self,
        now: DateTime<Utc>,
        which: impl Fn(&Session) -> bool,
    ) -> u64 {
        let mut revoked = 0;
        for session in self.sessions.values_mut() {
            if session.revoked_at.is_none() && which(session) {
                session.revoked_at = Some(now);
                revoked += 1;
            }
        }
        revoked
    }

    fn enqueue(&mut self, mail: Option<&OutgoingMail>) {
        if let Some(mail) = mail {
            self.outbox.insert(
                mail.id,
                OutboxRow {
                    mail: mail.clone(),
                    attempts: 0,
                    due_at: mail.created_at,
                    claim: None,
                    held_until: None,
                    finished_at: None,
                },
            );
        }
    }

    /// Applies a link's change to its user; the caller has checked the link.
    fn apply(
        &mut self,
        user_id: Uuid,
        change: &AccountChange,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = self.users.get(&user_id).ok_or(StoreError::NotFound)?;
        match change {
            AccountChange::VerifyEmail { email_key } => {
                if &row.email_key == email_key {
                    if let Some(row) = self.users.get_mut(&user_id) {
                        row.user.email_verified = true;
                    }
                }
            }
            AccountChange::ResetPassword { password_hash } => {
                if let Some(row) = self.users.get_mut(&user_id) {
                    row.user.password_hash = password_hash.clone();
                }
                self.revoke_user_sessions(user_id, None, now);
                self.browser_sessions.retain(|_, s| s.user_id != user_id);
            }
            AccountChange::ChangeEmail { email } => {
                self.set_email(user_id, email.as_str(), email.key(), true)?;
            }
        }
        Ok(())
    }

    /// Moves an account to another address, keeping the email index true.
    fn set_email(
        &mut self,
        user_id: Uuid,
        email: &str,
        email_key: &str,
        verified: bool,
    ) -> Result<(), StoreError> {
        if self
            .by_email
            .get(email_key)
            .is_some_and(|owner| *owner != user_id)
        {
            return Err(StoreError::Conflict(UniqueField::Email));
        }
        let row = self.users.get_mut(&user_id).ok_or(StoreError::NotFound)?;
        let old_key = std::mem::replace(&mut row.email_key, email_key.to_owned());
        row.user.email = email.to_owned();
        row.user.email_verified = verified;
        self.by_email.remove(&old_key);
        self.by_email.insert(email_key.to_owned(), user_id);
        Ok(())
    }

    /// A session with its user, whatever their state.
    fn session_with_user(&self, id: Uuid) -> Option<(Session, User)> {
        let session = self.sessions.get(&id)?;
        let user = self.users.get(&session.user_id)?;
        Some((session.clone(), user.user.clone()))
    }

    fn remove_sessions(&mut self, doomed: impl Fn(&Session) -> bool) -> u64 {
        let ids: Vec<Uuid> = self
            .sessions
            .values()
            .filter(|s| doomed(s))
            .map(|s| s.id)
            .collect();
        for id in &ids {
            self.sessions.remove(id);
        }
        self.refresh_tokens
            .retain(|_, token| !ids.contains(&token.session_id));
        ids.len() as u64
    }
}

fn stored(token: &NewRefreshToken, session_id: Uuid) -> RefreshTokenRecord {
    RefreshTokenRecord {
        digest: token.digest,
        session_id,
        issued_at: token.issued_at,
        expires_at: token.expires_at,
        used_at: None,
        successor_digest: None,
        successor_sealed: None,
    }
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
        index: impl Fn(&Tables) -> Option<&Uuid>,
    ) -> Result<Option<User>, StoreError> {
        let tables = self.lock()?;
        Ok(index(&tables)
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
        self.lock()?.insert_user(user)
    }

    async fn find_user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.get(&id).map(|row| row.user.clone()))
    }

    async fn find_user_by_username(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.find_by_key(|t| t.by_username.get(username_key))
    }

    async fn find_user_by_email(&self, email_key: &str) -> Result<Option<User>, StoreError> {
        self.find_by_key(|t| t.by_email.get(email_key))
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
        tables.remove_sessions(|s| s.user_id == id);
        tables.browser_sessions.retain(|_, s| s.user_id != id);
        tables.consents.retain(|(user, _), _| *user != id);
        tables.email_links.retain(|_, link| link.user_id != id);
        tables.factors.retain(|_, f| f.user_id != id);
        tables.recovery_codes.remove(&id);
        Ok(true)
    }

    async fn update_email(
        &self,
        id: Uuid,
        email: &str,
        email_key: &str,
        verified: bool,
    ) -> Result<(), StoreError> {
        self.lock()?.set_email(id, email, email_key, verified)
    }

    async fn search_users(&self, query: &UserQuery) -> Result<Vec<UserSummary>, StoreError> {
        use std::ops::Bound;
        let tables = self.lock()?;
        let start = match &query.after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        let take = usize::try_from(query.limit).unwrap_or(usize::MAX);
        Ok(tables
            .by_username
            .range::<str, _>((start, Bound::Unbounded))
            .filter_map(|(_, id)| tables.users.get(id))
            .filter(|row| query.matches(&row.username_key, &row.email_key))
            .take(take)
            .map(|row| UserSummary::from(row.user.clone()))
            .collect())
    }
}

impl SessionStore for MemoryStore {
    async fn create_session(
        &self,
        session: &Session,
        first_token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        if !tables.users.contains_key(&session.user_id) {
            return Err(StoreError::NotFound);
        }
        tables.sessions.insert(session.id, session.clone());
        tables
            .refresh_tokens
            .insert(first_token.digest, stored(first_token, session.id));
        Ok(())
    }

    async fn find_active_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, User)>, StoreError> {
        Ok(self
            .lock()?
            .session_with_user(id)
            .filter(|(session, _)| session.is_active(now)))
    }

    async fn consume_refresh_token(
        &self,
        digest: &TokenDigest,
        successor: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<Consumed, StoreError> {
        let mut tables = self.lock()?;
        let Some(token) = tables.refresh_tokens.get(digest).cloned() else {
            return Ok(Consumed::Invalid);
        };
        let Some((session, user)) = tables.session_with_user(token.session_id) else {
            return Ok(Consumed::Invalid);
        };
        if !session.is_active(now) || token.expires_at <= now {
            return Ok(Consumed::Invalid);
        }
        if token.used_at.is_some() {
            return Ok(Consumed::AlreadyUsed {
                token,
                session,
                user,
            });
        }
        if let Some(used) = tables.refresh_tokens.get_mut(digest) {
            used.used_at = Some(now);
            used.successor_digest = Some(successor.digest);
            used.successor_sealed = successor.sealed.clone();
        }
        tables
            .refresh_tokens
            .insert(successor.digest, stored(successor, session.id));
        let session = match tables.sessions.get_mut(&session.id) {
            Some(live) => {
                live.expires_at = successor.expires_at;
                live.clone()
            }
            None => session,
        };
        Ok(Consumed::Rotated { session, user })
    }

    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(RefreshTokenRecord, Session, User)>, StoreError> {
        let tables = self.lock()?;
        Ok(tables.refresh_tokens.get(digest).and_then(|token| {
            tables
                .session_with_user(token.session_id)
                .map(|(session, user)| (token.clone(), session, user))
        }))
    }

    async fn revoke_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        match tables.sessions.get_mut(&id) {
            Some(session) if session.revoked_at.is_none() => {
                session.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(self.lock()?.revoke_user_sessions(user_id, keep, now))
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        let purged = tables.remove_sessions(|s| !s.is_active(now));
        tables.refresh_tokens.retain(|_, t| t.expires_at > now);
        Ok(purged)
    }
}

impl ThrottleStore for MemoryStore {
    async fn throttle_state(&self, key: &str) -> Result<Option<ThrottleState>, StoreError> {
        Ok(self.lock()?.throttle.get(key).cloned())
    }

    async fn update_throttle<F: ThrottleUpdate>(
        &self,
        key: &str,
        update: F,
    ) -> Result<ThrottleState, StoreError> {
        let mut tables = self.lock()?;
        let next = update(tables.throttle.get(key).cloned());
        tables.throttle.insert(key.to_owned(), next.clone());
        Ok(next)
    }

    async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        self.lock()?.throttle.remove(key);
        Ok(())
    }

    async fn purge_throttle(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut data = self.lock()?;
        let before = data.throttle.len();
        data.throttle.retain(|_, state| {
            state.window_started >= stale_before || state.locked_until.is_some_and(|t| t > now)
        });
        Ok((before - data.throttle.len()) as u64)
    }
}

impl ClientStore for MemoryStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        if tables.clients.contains_key(&client.id) {
            return Err(StoreError::Conflict(UniqueField::ClientId));
        }
        tables.clients.insert(client.id.clone(), client.clone());
        Ok(())
    }

    async fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.lock()?.clients.get(id).cloned())
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        Ok(self.lock()?.clients.values().cloned().collect())
    }

    async fn update_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        let stored = tables
            .clients
            .get_mut(&client.id)
            .ok_or(StoreError::NotFound)?;
        *stored = Client {
            created_at: stored.created_at,
            ..client.clone()
        };
        Ok(())
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.clients.remove(id).is_some())
    }
}

impl FlowStore for MemoryStore {
    async fn insert_authorization_request(
        &self,
        request: &PendingAuthorization,
    ) -> Result<(), StoreError> {
        self.lock()?
            .authorization_requests
            .insert(request.id, request.clone());
        Ok(())
    }

    async fn find_authorization_request(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        Ok(self
            .lock()?
            .authorization_requests
            .get(&id)
            .filter(|r| r.expires_at > now)
            .cloned())
    }

    async fn delete_authorization_request(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.lock()?.authorization_requests.remove(&id).is_some())
    }

    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        self.lock()?
            .codes
            .insert(code.digest, (code.clone(), false));
        Ok(())
    }

    async fn redeem_authorization_code(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<CodeRedemption, StoreError> {
        let mut tables = self.lock()?;
        Ok(match tables.codes.get_mut(digest) {
            Some((code, true)) => CodeRedemption::AlreadyUsed {
                session_id: code.session_id,
            },
            Some((code, used)) if code.expires_at > now => {
                *used = true;
                CodeRedemption::Redeemed(Box::new(code.clone()))
            }
            _ => CodeRedemption::Invalid,
        })
    }

    async fn create_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        if !tables.users.contains_key(&session.user_id) {
            return Err(StoreError::NotFound);
        }
        tables
            .browser_sessions
            .insert(session.digest, session.clone());
        Ok(())
    }

    async fn touch_browser_session(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        idle_until: DateTime<Utc>,
    ) -> Result<Option<(BrowserSession, User)>, StoreError> {
        let mut tables = self.lock()?;
        let Some(session) = tables
            .browser_sessions
            .get_mut(digest)
            .filter(|s| s.is_active(now))
        else {
            return Ok(None);
        };
        session.idle_expires_at = idle_until;
        let session = session.clone();
        Ok(tables
            .users
            .get(&session.user_id)
            .map(|row| (session, row.user.clone())))
    }

    async fn end_browser_session(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        Ok(self.lock()?.browser_sessions.remove(digest).is_some())
    }

    async fn sign_out_browser(&self, id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        tables.browser_sessions.retain(|_, s| s.id != id);
        Ok(tables.revoke_sessions_where(now, |session| session.browser_session_id == Some(id)))
    }

    async fn find_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()?
            .consents
            .get(&(user_id, client_id.to_owned()))
            .map(|consent| consent.scope.clone()))
    }

    async fn save_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        if !tables.users.contains_key(&user_id) {
            return Err(StoreError::NotFound);
        }
        tables.consents.insert(
            (user_id, client_id.to_owned()),
            Consent {
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                granted_at: now,
            },
        );
        Ok(())
    }

    async fn list_consents(&self, user_id: Uuid) -> Result<Vec<Consent>, StoreError> {
        Ok(self
            .lock()?
            .consents
            .range((user_id, String::new())..)
            .take_while(|((user, _), _)| *user == user_id)
            .map(|(_, consent)| consent.clone())
            .collect())
    }

    async fn revoke_consent(
        &self,
        user_id: Uuid,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let mut tables = self.lock()?;
        if tables
            .consents
            .remove(&(user_id, client_id.to_owned()))
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some(tables.revoke_sessions_where(now, |session| {
            session.user_id == user_id && session.client_id == client_id && session.expires_at > now
        })))
    }

    async fn purge_flows(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        let before = tables.authorization_requests.len()
            + tables.codes.len()
            + tables.browser_sessions.len();
        tables
            .authorization_requests
            .retain(|_, r| r.expires_at > now);
        tables.codes.retain(|_, (c, _)| c.expires_at > now);
        tables.browser_sessions.retain(|_, s| s.is_active(now));
        tables.ceremonies.retain(|_, c| c.expires_at > now);
        let after = tables.authorization_requests.len()
            + tables.codes.len()
            + tables.browser_sessions.len();
        Ok((before - after) as u64)
    }
}

impl MailStore for MemoryStore {
    async fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), StoreError> {
        self.lock()?.enqueue(Some(mail));
        Ok(())
    }

    async fn claim_mail(
        &self,
        claim: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let mut tables = self.lock()?;
        let mut due: Vec<&mut OutboxRow> = tables
            .outbox
            .values_mut()
            .filter(|row| {
                row.finished_at.is_none()
                    && row.due_at <= now
                    && row.held_until.is_none_or(|until| until <= now)
            })
            .collect();
        due.sort_by_key(|row| (row.mail.created_at, row.mail.id));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|row| {
                row.claim = Some(claim);
                row.held_until = Some(lease_until);
                row.attempts += 1;
                QueuedMail {
                    mail: row.mail.clone(),
                    attempts: row.attempts,
                    claim,
                }
            })
            .collect())
    }

    async fn finish_mail(
        &self,
        id: Uuid,
        claim: Uuid,
        outcome: &MailOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        let Some(row) = tables.outbox.get_mut(&id) else {
            return Ok(false);
        };
        if row.claim != Some(claim) || row.finished_at.is_some() {
            return Ok(false);
        }
        row.claim = None;
        row.held_until = None;
        match outcome {
            MailOutcome::Retry { at, .. } => row.due_at = *at,
            MailOutcome::Sent | MailOutcome::GaveUp { .. } => {
                row.finished_at = Some(now);
                row.mail.subject.clear();
                row.mail.text.clear();
                row.mail.html.clear();
            }
        }
        Ok(true)
    }

    async fn insert_user_with_link(
        &self,
        user: &NewUser,
        link: &EmailLink,
        mail: &OutgoingMail,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        tables.insert_user(user)?;
        tables.email_links.insert(link.digest, link.clone());
        tables.enqueue(Some(mail));
        Ok(())
    }

    async fn create_email_link(
        &self,
        link: &EmailLink,
        mail: &OutgoingMail,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        if !tables.users.contains_key(&link.user_id) {
            return Err(StoreError::NotFound);
        }
        tables.email_links.insert(link.digest, link.clone());
        tables.enqueue(Some(mail));
        Ok(())
    }

    async fn find_email_link(&self, digest: &TokenDigest) -> Result<Option<EmailLink>, StoreError> {
        Ok(self.lock()?.email_links.get(digest).cloned())
    }

    async fn use_email_link(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        change: &AccountChange,
        mail: Option<&OutgoingMail>,
    ) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        let Some(link) = tables.email_links.get(digest) else {
            return Ok(false);
        };
        if link.used_at.is_some() || link.expires_at <= now {
            return Ok(false);
        }
        let user_id = link.user_id;
        match tables.apply(user_id, change, now) {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Some(link) = tables.email_links.get_mut(digest) {
            link.used_at = Some(now);
        }
        tables.enqueue(mail);
        Ok(true)
    }

    async fn replace_password(
        &self,
        user_id: Uuid,
        password_hash: &str,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
        notice: Option<&OutgoingMail>,
    ) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        let row = tables.users.get_mut(&user_id).ok_or(StoreError::NotFound)?;
        row.user.password_hash = password_hash.to_owned();
        let revoked = tables.revoke_user_sessions(user_id, keep, now);
        tables.browser_sessions.retain(|_, s| s.user_id != user_id);
        tables.enqueue(notice);
        Ok(revoked)
    }

    async fn purge_mail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        let count = tables.outbox.len() + tables.email_links.len();
        tables
            .outbox
            .retain(|_, row| row.finished_at.is_none_or(|at| at >= before));
        tables
            .email_links
            .retain(|_, link| link.used_at.unwrap_or(link.expires_at) >= before);
        Ok((count - tables.outbox.len() - tables.email_links.len()) as u64)
    }
}

impl FactorStore for MemoryStore {
    async fn add_factor(&self, factor: &Factor) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        let taken = tables.factors.values().any(|f| {
            (factor.kind == FactorKind::Totp
                && f.kind == FactorKind::Totp
                && f.user_id == factor.user_id)
                || (factor.credential_id.is_some() && f.credential_id == factor.credential_id)
        });
        if taken || tables.factors.contains_key(&factor.id) {
            return Err(StoreError::Conflict(UniqueField::Factor));
        }
        if !tables.users.contains_key(&factor.user_id) {
            return Err(StoreError::NotFound);
        }
        tables.factors.insert(factor.id, factor.clone());
        Ok(())
    }

    async fn list_factors(&self, user_id: Uuid) -> Result<Vec<Factor>, StoreError> {
        // Keys are v7 ids: map order is creation order.
        Ok(self
            .lock()?
            .factors
            .values()
            .filter(|f| f.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Factor>, StoreError> {
        Ok(self
            .lock()?
            .factors
            .values()
            .find(|f| f.credential_id.as_deref() == Some(credential_id))
            .cloned())
    }

    async fn advance_totp_step(
        &self,
        factor_id: Uuid,
        step: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        match tables.factors.get_mut(&factor_id) {
            Some(factor) if factor.last_step < step => {
                factor.last_step = step;
                factor.last_used_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_passkey_use(
        &self,
        factor_id: Uuid,
        data: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        let Some(factor) = tables.factors.get_mut(&factor_id) else {
            return Ok(false);
        };
        data.clone_into(&mut factor.data);
        factor.last_used_at = Some(now);
        Ok(true)
    }

    async fn remove_factor(&self, user_id: Uuid, factor_id: Uuid) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        if tables
            .factors
            .get(&factor_id)
            .is_none_or(|f| f.user_id != user_id)
        {
            return Ok(false);
        }
        tables.factors.remove(&factor_id);
        if !tables.factors.values().any(|f| f.user_id == user_id) {
            tables.recovery_codes.remove(&user_id);
        }
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        digests: &[TokenDigest],
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        if !tables.users.contains_key(&user_id) {
            return Err(StoreError::NotFound);
        }
        tables.recovery_codes.insert(user_id, digests.to_vec());
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        digest: &TokenDigest,
    ) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        let Some(codes) = tables.recovery_codes.get_mut(&user_id) else {
            return Ok(false);
        };
        let before = codes.len();
        codes.retain(|d| d != digest);
        Ok(codes.len() < before)
    }

    async fn count_recovery_codes(&self, user_id: Uuid) -> Result<u64, StoreError> {
        Ok(self
            .lock()?
            .recovery_codes
            .get(&user_id)
            .map_or(0, |codes| codes.len() as u64))
    }

    async fn reset_factors(&self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        if !tables.users.contains_key(&user_id) {
            return Err(StoreError::NotFound);
        }
        let before = tables.factors.len();
        tables.factors.retain(|_, f| f.user_id != user_id);
        let removed = (before - tables.factors.len()) as u64;
        tables.recovery_codes.remove(&user_id);
        tables.revoke_user_sessions(user_id, None, now);
        tables.browser_sessions.retain(|_, s| s.user_id != user_id);
        Ok(removed)
    }

    async fn put_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        self.lock()?
            .ceremonies
            .insert(ceremony.digest, ceremony.clone());
        Ok(())
    }

    async fn find_ceremony(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        Ok(self
            .lock()?
            .ceremonies
            .get(digest)
            .filter(|c| c.expires_at > now)
            .cloned())
    }

    async fn take_ceremony(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        Ok(self
            .lock()?
            .ceremonies
            .remove(digest)
            .filter(|c| c.expires_at > now))
    }

    async fn list_user_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Session>, Vec<BrowserSession>), StoreError> {
        let tables = self.lock()?;
        let mut sessions: Vec<Session> = tables
            .sessions
            .values()
            .filter(|s| s.user_id == user_id && s.is_active(now))
            .cloned()
            .collect();
        sessions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let mut browsers: Vec<BrowserSession> = tables
            .browser_sessions
            .values()
            .filter(|s| s.user_id == user_id && s.is_active(now))
            .cloned()
            .collect();
        browsers.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok((sessions, browsers))
    }
}

impl AuditStore for MemoryStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        if tables.audit.contains_key(&event.id) {
            return Err(StoreError::Other(format!(
                "audit record {} exists",
                event.id
            )));
        }
        tables.audit.insert(event.id, event.clone());
        Ok(())
    }

    async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let take = usize::try_from(query.limit).unwrap_or(usize::MAX);
        Ok(self
            .lock()?
            .audit
            .values()
            .filter(|event| query.matches(event))
            .take(take)
            .cloned()
            .collect())
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        let count = tables.audit.len();
        tables.audit.retain(|_, event| event.time >= before);
        Ok((count - tables.audit.len()) as u64)
    }
}

impl Lifecycle for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }

    /// Maps have no schema to migrate.
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}

impl Store for MemoryStore {
    fn backend_name(&self) -> &'static str {
        "memory"
    }
}
