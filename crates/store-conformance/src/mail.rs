//! The outbox and one-time links: a message is written with the change that
//! causes it, claimed by one sender at a time, retried when due, and a link
//! is spent once, with its change.

use std::collections::BTreeSet;

use auth_core::store::{Store, StoreError, UniqueField};
use auth_core::{AccountChange, BrowserSession, Email, EmailLink, LinkPurpose, MailOutcome};
use auth_core::{OutgoingMail, QueuedMail};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::sessions::{digest, fixture, now};
use crate::users::new_user;

pub fn message(to: &str, subject: &str, created_at: DateTime<Utc>) -> OutgoingMail {
    OutgoingMail {
        id: Uuid::now_v7(),
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: format!("{subject}\n\nhttps://id.example.org/email/confirm?token=abc"),
        html: format!("<p>{subject}</p>"),
        created_at,
    }
}

pub fn link(purpose: LinkPurpose, user_id: Uuid, email: &str, ttl: Duration) -> EmailLink {
    let at = now();
    EmailLink {
        digest: digest(purpose.as_str()),
        purpose,
        user_id,
        email: email.to_owned(),
        created_at: at,
        expires_at: at + ttl,
        used_at: None,
    }
}

/// A link stored with the message that carries it.
async fn stored_link<S: Store>(
    store: &S,
    purpose: LinkPurpose,
    user_id: Uuid,
    email: &str,
    ttl: Duration,
) -> EmailLink {
    let stored = link(purpose, user_id, email, ttl);
    store
        .create_email_link(&stored, &message(email, purpose.as_str(), now()))
        .await
        .unwrap();
    stored
}

/// Claims everything due at `at` with a fresh claim and a minute's lease.
async fn claim_all<S: Store>(store: &S, at: DateTime<Utc>) -> Vec<QueuedMail> {
    store
        .claim_mail(Uuid::new_v4(), at, at + Duration::minutes(1), 100)
        .await
        .expect("claim")
}

/// A browser session of `user_id`, idle for an hour, at most eight.
fn browser_session(user_id: Uuid) -> BrowserSession {
    crate::flows::browser_session(user_id, Duration::hours(1), Duration::hours(8))
}

pub async fn a_registration_writes_the_user_its_link_and_its_message<S: Store>(store: &S) {
    let user = new_user("Vera", "Vera@Example.org");
    let verify = link(
        LinkPurpose::VerifyEmail,
        user.id,
        "Vera@Example.org",
        Duration::hours(1),
    );
    let mail = message("Vera@Example.org", "Confirm your email", now());
    store
        .insert_user_with_link(&user, &verify, &mail)
        .await
        .expect("register");
    let found = store.find_user_by_id(user.id).await.unwrap().unwrap();
    assert!(!found.email_verified, "a new address is not verified");
    assert_eq!(
        store.find_email_link(&verify.digest).await.unwrap(),
        Some(verify)
    );
    let claimed = claim_all(store, now()).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].mail, mail, "the message reads back whole");
    assert_eq!(claimed[0].attempts, 1);
}

pub async fn a_refused_registration_writes_no_link_and_no_message<S: Store>(store: &S) {
    store
        .insert_user(&new_user("taken", "taken@example.org"))
        .await
        .unwrap();
    let user = new_user("Taken", "other@example.org");
    let verify = link(
        LinkPurpose::VerifyEmail,
        user.id,
        "other@example.org",
        Duration::hours(1),
    );
    let err = store
        .insert_user_with_link(&user, &verify, &message("other@example.org", "x", now()))
        .await
        .expect_err("the username is taken");
    assert!(matches!(err, StoreError::Conflict(UniqueField::Username)));
    assert_eq!(store.find_email_link(&verify.digest).await.unwrap(), None);
    assert!(claim_all(store, now()).await.is_empty());
}

pub async fn a_claim_holds_a_message_until_its_lease_ends<S: Store>(store: &S) {
    let at = now();
    let mail = message("a@example.org", "held", at);
    store.enqueue_mail(&mail).await.unwrap();
    let first = Uuid::new_v4();
    let lease_until = at + Duration::seconds(30);
    let claimed = store.claim_mail(first, at, lease_until, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].claim, first);
    assert!(
        claim_all(store, at + Duration::seconds(29))
            .await
            .is_empty(),
        "held by a live claim"
    );
    let retaken = claim_all(store, at + Duration::seconds(31)).await;
    assert_eq!(retaken.len(), 1, "a lapsed claim frees the message");
    assert_eq!(retaken[0].attempts, 2);
    assert!(
        !store
            .finish_mail(mail.id, first, &MailOutcome::Sent, at)
            .await
            .unwrap(),
        "the lapsed claim may not record an outcome"
    );
    assert!(store
        .finish_mail(mail.id, retaken[0].claim, &MailOutcome::Sent, at)
        .await
        .unwrap());
}

pub async fn concurrent_claims_never_share_a_message<S: Store>(store: &S) {
    let at = now();
    for i in 0..30 {
        store
            .enqueue_mail(&message(&format!("u{i}@example.org"), "m", at))
            .await
            .unwrap();
    }
    let claims = futures::future::join_all((0..6).map(|_| async {
        store
            .claim_mail(Uuid::new_v4(), at, at + Duration::minutes(1), 10)
            .await
            .expect("claim")
    }))
    .await;
    let ids: Vec<Uuid> = claims.into_iter().flatten().map(|q| q.mail.id).collect();
    let distinct: BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a message claimed twice");
    assert_eq!(ids.len(), 30, "every message claimed once");
}

pub async fn retried_mail_returns_when_due_and_sent_mail_never<S: Store>(store: &S) {
    let at = now();
    let mail = message("b@example.org", "retry", at);
    store.enqueue_mail(&mail).await.unwrap();
    let claimed = claim_all(store, at).await;
    let retry = MailOutcome::Retry {
        at: at + Duration::seconds(10),
        error: "connection refused".into(),
    };
    assert!(store
        .finish_mail(mail.id, claimed[0].claim, &retry, at)
        .await
        .unwrap());
    assert!(claim_all(store, at + Duration::seconds(9)).await.is_empty());
    let again = claim_all(store, at + Duration::seconds(10)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].mail, mail, "a retried message keeps its parts");
    assert!(store
        .finish_mail(mail.id, again[0].claim, &MailOutcome::Sent, at)
        .await
        .unwrap());
    assert!(claim_all(store, at + Duration::days(1)).await.is_empty());
    let gave_up = message("c@example.org", "gave up", at);
    store.enqueue_mail(&gave_up).await.unwrap();
    let claimed = claim_all(store, at).await;
    let outcome = MailOutcome::GaveUp {
        error: "550 no such mailbox".into(),
    };
    assert!(store
        .finish_mail(gave_up.id, claimed[0].claim, &outcome, at)
        .await
        .unwrap());
    assert!(claim_all(store, at + Duration::days(1)).await.is_empty());
}

pub async fn a_link_is_spent_once_with_its_change<S: Store>(store: &S) {
    let user = new_user("wanda", "wanda@example.org");
    store.insert_user(&user).await.unwrap();
    let verify = stored_link(
        store,
        LinkPurpose::VerifyEmail,
        user.id,
        "wanda@example.org",
        Duration::hours(1),
    )
    .await;
    let change = AccountChange::VerifyEmail {
        email_key: "wanda@example.org".into(),
    };
    assert!(store
        .use_email_link(&verify.digest, now(), &change, None)
        .await
        .unwrap());
    let found = store.find_user_by_id(user.id).await.unwrap().unwrap();
    assert!(found.email_verified);
    let spent = store
        .find_email_link(&verify.digest)
        .await
        .unwrap()
        .unwrap();
    assert!(spent.used_at.is_some());
    assert!(
        !store
            .use_email_link(&verify.digest, now(), &change, None)
            .await
            .unwrap(),
        "a link is single use"
    );
    let expired = stored_link(
        store,
        LinkPurpose::VerifyEmail,
        user.id,
        "wanda@example.org",
        Duration::seconds(-1),
    )
    .await;
    assert!(!store
        .use_email_link(&expired.digest, now(), &change, None)
        .await
        .unwrap());
    assert!(!store
        .use_email_link(&digest("unknown"), now(), &change, None)
        .await
        .unwrap());
}

pub async fn concurrent_spends_of_one_link_have_one_winner<S: Store>(store: &S) {
    let f = fixture(store, "xena").await;
    let reset = stored_link(
        store,
        LinkPurpose::ResetPassword,
        f.user_id,
        "xena@example.org",
        Duration::hours(1),
    )
    .await;
    let spends = futures::future::join_all((0..8).map(|i| async move {
        let change = AccountChange::ResetPassword {
            password_hash: format!("$argon2id$new-{i}"),
        };
        let notice = message("xena@example.org", "changed", now());
        store
            .use_email_link(&reset.digest, now(), &change, Some(&notice))
            .await
            .expect("spend")
    }))
    .await;
    let winners = spends.iter().filter(|won| **won).count();
    assert_eq!(winners, 1);
    let notices = claim_all(store, now()).await;
    let changed = notices.iter().filter(|q| q.mail.subject == "changed");
    assert_eq!(changed.count(), 1, "one notice for one reset");
}

pub async fn a_reset_ends_every_session_and_queues_its_notice<S: Store>(store: &S) {
    let f = fixture(store, "yuri").await;
    let browser = browser_session(f.user_id);
    store.create_browser_session(&browser).await.unwrap();
    let reset = stored_link(
        store,
        LinkPurpose::ResetPassword,
        f.user_id,
        "yuri@example.org",
        Duration::hours(1),
    )
    .await;
    let change = AccountChange::ResetPassword {
        password_hash: "$argon2id$reset".into(),
    };
    let notice = message("yuri@example.org", "changed", now());
    let at = now();
    assert!(store
        .use_email_link(&reset.digest, at, &change, Some(&notice))
        .await
        .unwrap());
    let user = store.find_user_by_id(f.user_id).await.unwrap().unwrap();
    assert_eq!(user.password_hash, "$argon2id$reset");
    assert!(store
        .find_active_session(f.session.id, at)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch_browser_session(&browser.digest, at, at + Duration::hours(1))
        .await
        .unwrap()
        .is_none());
    let queued = claim_all(store, at).await;
    let subjects: BTreeSet<_> = queued.iter().map(|q| q.mail.subject.as_str()).collect();
    assert_eq!(subjects, BTreeSet::from(["reset_password", "changed"]));
}

pub async fn an_email_change_switches_the_address_unless_it_was_taken<S: Store>(store: &S) {
    let zed = new_user("zed", "zed@example.org");
    store.insert_user(&zed).await.unwrap();
    store
        .insert_user(&new_user("amy", "amy@example.org"))
        .await
        .unwrap();
    let taken = stored_link(
        store,
        LinkPurpose::ChangeEmail,
        zed.id,
        "Amy@Example.org",
        Duration::hours(1),
    )
    .await;
    claim_all(store, now()).await;
    let to_amy = AccountChange::ChangeEmail {
        email: Email::parse("Amy@Example.org").unwrap(),
    };
    let notice = message("zed@example.org", "changed", now());
    let err = store
        .use_email_link(&taken.digest, now(), &to_amy, Some(&notice))
        .await
        .expect_err("the address is another account's");
    assert!(matches!(err, StoreError::Conflict(UniqueField::Email)));
    let unchanged = store.find_user_by_id(zed.id).await.unwrap().unwrap();
    assert_eq!(unchanged.email, "zed@example.org");
    let link_after = store.find_email_link(&taken.digest).await.unwrap().unwrap();
    assert_eq!(link_after.used_at, None, "a refused change spends nothing");
    assert!(
        claim_all(store, now()).await.is_empty(),
        "and queues nothing"
    );

    let free = stored_link(
        store,
        LinkPurpose::ChangeEmail,
        zed.id,
        "Zed.New@Example.org",
        Duration::hours(1),
    )
    .await;
    let to_new = AccountChange::ChangeEmail {
        email: Email::parse("Zed.New@Example.org").unwrap(),
    };
    assert!(store
        .use_email_link(&free.digest, now(), &to_new, Some(&notice))
        .await
        .unwrap());
    let changed = store
        .find_user_by_email("zed.new@example.org")
        .await
        .unwrap()
        .expect("found by the new address");
    assert_eq!(changed.id, zed.id);
    assert_eq!(changed.email, "Zed.New@Example.org");
    assert!(changed.email_verified, "the new address was proved");
    assert!(store
        .find_user_by_email("zed@example.org")
        .await
        .unwrap()
        .is_none());
    store
        .insert_user(&new_user("zed2", "zed@example.org"))
        .await
        .expect("the old address is free again");
}

pub async fn replacing_a_password_keeps_one_session_and_queues_the_notice<S: Store>(store: &S) {
    let f = fixture(store, "bob").await;
    let other = fixture_session(store, f.user_id).await;
    let browser = browser_session(f.user_id);
    store.create_browser_session(&browser).await.unwrap();
    let notice = message("bob@example.org", "changed", now());
    let at = now();
    let revoked = store
        .replace_password(
            f.user_id,
            "$argon2id$new",
            Some(f.session.id),
            at,
            Some(&notice),
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    assert!(store
        .find_active_session(f.session.id, at)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .find_active_session(other, at)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .touch_browser_session(&browser.digest, at, at + Duration::hours(1))
        .await
        .unwrap()
        .is_none());
    let user = store.find_user_by_id(f.user_id).await.unwrap().unwrap();
    assert_eq!(user.password_hash, "$argon2id$new");
    assert_eq!(claim_all(store, at).await.len(), 1);
    let err = store
        .replace_password(Uuid::now_v7(), "$argon2id$x", None, at, None)
        .await
        .expect_err("no such user");
    assert!(matches!(err, StoreError::NotFound));
}

/// A second active session of `user_id`.
async fn fixture_session<S: Store>(store: &S, user_id: Uuid) -> Uuid {
    let first = crate::sessions::token("second", now(), Duration::days(1));
    let session = crate::sessions::session_for(user_id, &first);
    store.create_session(&session, &first).await.unwrap();
    session.id
}

pub async fn purging_mail_removes_finished_messages_and_spent_links<S: Store>(store: &S) {
    let user = new_user("cleo", "cleo@example.org");
    store.insert_user(&user).await.unwrap();
    let at = now();
    let sent = message("cleo@example.org", "sent", at);
    let waiting = message("cleo@example.org", "waiting", at);
    store.enqueue_mail(&sent).await.unwrap();
    let claimed = claim_all(store, at).await;
    store
        .finish_mail(sent.id, claimed[0].claim, &MailOutcome::Sent, at)
        .await
        .unwrap();
    store.enqueue_mail(&waiting).await.unwrap();
    let live = link(
        LinkPurpose::VerifyEmail,
        user.id,
        "cleo@example.org",
        Duration::hours(1),
    );
    let old = link(
        LinkPurpose::ResetPassword,
        user.id,
        "cleo@example.org",
        Duration::seconds(-10),
    );
    for l in [&live, &old] {
        store
            .create_email_link(l, &message("cleo@example.org", "link", at))
            .await
            .unwrap();
    }
    let purged = store.purge_mail(at + Duration::seconds(1)).await.unwrap();
    assert_eq!(purged, 2, "the sent message and the expired link");
    assert!(store.find_email_link(&old.digest).await.unwrap().is_none());
    assert!(store.find_email_link(&live.digest).await.unwrap().is_some());
    let left = claim_all(store, at).await;
    assert_eq!(left.len(), 3, "unsent messages stay: {left:?}");
}
