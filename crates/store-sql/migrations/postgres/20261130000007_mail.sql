-- Mail: verified addresses, one-time links and the outbox.
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- Links sent by mail (verify, reset, change address), stored only as
-- SHA-256 digests. `email` is the address the link proves.
CREATE TABLE email_links (
    digest     bytea       PRIMARY KEY,
    purpose    text        NOT NULL,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_links_user_id ON email_links (user_id);
CREATE INDEX email_links_expires_at ON email_links (expires_at);

-- Messages waiting to be sent. A sender claims a message (`claim`,
-- `held_until`) before sending it; sent and given-up messages keep no
-- subject or body and are purged.
CREATE TABLE mail_outbox (
    id          uuid        PRIMARY KEY,
    recipient   text        NOT NULL,
    subject     text        NOT NULL,
    text_body   text        NOT NULL,
    html_body   text        NOT NULL,
    created_at  timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    claim       uuid,
    held_until  timestamptz,
    finished_at timestamptz,
    outcome     text,
    last_error  text
);
CREATE INDEX mail_outbox_due ON mail_outbox (due_at) WHERE finished_at IS NULL;
CREATE INDEX mail_outbox_finished ON mail_outbox (finished_at) WHERE finished_at IS NOT NULL;
