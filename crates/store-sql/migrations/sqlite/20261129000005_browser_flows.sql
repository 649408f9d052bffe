-- The authorization-code flow. Every session now names the client it was
-- granted to ('tessera': v1's implicit public client).
ALTER TABLE sessions ADD COLUMN client_id TEXT NOT NULL DEFAULT 'tessera';

-- /authorize requests waiting for the person; `params` is the checked
-- request as JSON. Expire within minutes and are purged.
CREATE TABLE authorization_requests (
    id         BLOB PRIMARY KEY NOT NULL,
    params     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX authorization_requests_expires_at ON authorization_requests (expires_at);

-- Codes, stored only as SHA-256 digests. `grant_data` is what the code is
-- bound to (JSON); `session_id` is the session its redemption creates,
-- so a second presentation knows what to revoke.
CREATE TABLE authorization_codes (
    digest     BLOB PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    session_id BLOB NOT NULL,
    grant_data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

-- Browser sign-in sessions, named by a cookie whose digest is stored.
CREATE TABLE browser_sessions (
    digest          BLOB PRIMARY KEY NOT NULL,
    id              BLOB NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    idle_expires_at TEXT NOT NULL,
    expires_at      TEXT NOT NULL
);
CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);

-- Remembered consent: the scopes a user allowed a client.
CREATE TABLE consents (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
