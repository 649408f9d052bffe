-- Sessions (one per login) and their refresh tokens, stored only as
-- SHA-256 digests. Times are fixed-width RFC 3339 UTC text
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ), so they compare correctly as strings.
CREATE TABLE sessions (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    scope      TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    digest           BLOB PRIMARY KEY NOT NULL,
    session_id       BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at        TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    used_at          TEXT,
    successor_digest BLOB,
    successor_sealed BLOB
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
