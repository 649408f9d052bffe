-- OAuth clients registered with `tessera client add` (configured clients
-- never reach the store). Lists are JSON arrays of strings; the secret is
-- kept only as its SHA-256 digest (NULL for a public client).
CREATE TABLE clients (
    id                        text        PRIMARY KEY,
    name                      text        NOT NULL,
    secret_digest             bytea,
    redirect_uris             text        NOT NULL,
    post_logout_redirect_uris text        NOT NULL,
    grant_types               text        NOT NULL,
    scopes                    text        NOT NULL,
    first_party               boolean     NOT NULL,
    created_at                timestamptz NOT NULL
);
