-- Mail: verified addresses, one-time links and the outbox.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;

-- Links sent by mail (verify, reset, change address), stored only as
-- SHA-256 digests. `email` is the address the link proves.
CREATE TABLE email_links (
    digest     BLOB PRIMARY KEY NOT NULL,
    purpose    TEXT NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX email_links_user_id ON email_links (user_id);
CREATE INDEX email_links_expires_at ON email_links (expires_at);

-- Messages waiting to be sent. A sender claims a message (`claim`,
-- `held_until`) before sending it; sent and given-up messages keep no
-- subject or body and are purged.
CREATE TABLE mail_outbox (
    id          BLOB PRIMARY KEY NOT NULL,
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    due_at      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    claim       BLOB,
    held_until  TEXT,
    finished_at TEXT,
    outcome     TEXT,
    last_error  TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (due_at) WHERE finished_at IS NULL;
CREATE INDEX mail_outbox_finished ON mail_outbox (finished_at) WHERE finished_at IS NOT NULL;
