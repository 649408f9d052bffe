-- Second factors. How a browser session was signed in (RFC 8176 `amr`
-- values, space-separated); sessions from before this migration used a
-- password.
ALTER TABLE browser_sessions ADD COLUMN amr text NOT NULL DEFAULT 'pwd';

-- Authenticator apps (`data`: the sealed secret) and passkeys (`data`: the
-- credential, `credential_id` unique across accounts). `last_step` is the
-- last TOTP time step accepted, advanced by a conditional UPDATE.
CREATE TABLE factors (
    id            uuid        PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text        NOT NULL,
    name          text        NOT NULL,
    data          text        NOT NULL,
    credential_id text,
    last_step     bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz
);
CREATE INDEX factors_user_id ON factors (user_id);
CREATE UNIQUE INDEX factors_credential_id ON factors (credential_id) WHERE credential_id IS NOT NULL;
CREATE UNIQUE INDEX factors_one_app_per_user ON factors (user_id) WHERE kind = 'totp';

-- Recovery codes, as SHA-256 digests; a used one is deleted.
CREATE TABLE recovery_codes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest     bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, digest)
);

-- Multi-step sign-ins and enrolments under way (WebAuthn state, a pending
-- second factor, an app not yet confirmed), named by a token's digest.
CREATE TABLE ceremonies (
    digest     bytea       PRIMARY KEY,
    kind       text        NOT NULL,
    user_id    uuid        REFERENCES users (id) ON DELETE CASCADE,
    data       text        NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX ceremonies_expires_at ON ceremonies (expires_at);
