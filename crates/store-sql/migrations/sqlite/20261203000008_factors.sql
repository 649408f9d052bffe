-- Second factors. How a browser session was signed in (RFC 8176 `amr`
-- values, space-separated); sessions from before this migration used a
-- password.
ALTER TABLE browser_sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

-- Authenticator apps (`data`: the sealed secret) and passkeys (`data`: the
-- credential, `credential_id` unique across accounts). `last_step` is the
-- last TOTP time step accepted, advanced by a conditional UPDATE.
CREATE TABLE factors (
    id            BLOB PRIMARY KEY NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    data          TEXT NOT NULL,
    credential_id TEXT,
    last_step     INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);
CREATE INDEX factors_user_id ON factors (user_id);
CREATE UNIQUE INDEX factors_credential_id ON factors (credential_id) WHERE credential_id IS NOT NULL;
CREATE UNIQUE INDEX factors_one_app_per_user ON factors (user_id) WHERE kind = 'totp';

-- Recovery codes, as SHA-256 digests; a used one is deleted.
CREATE TABLE recovery_codes (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest     BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, digest)
);

-- Multi-step sign-ins and enrolments under way (WebAuthn state, a pending
-- second factor, an app not yet confirmed), named by a token's digest.
CREATE TABLE ceremonies (
    digest     BLOB PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    user_id    BLOB REFERENCES users (id) ON DELETE CASCADE,
    data       TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
