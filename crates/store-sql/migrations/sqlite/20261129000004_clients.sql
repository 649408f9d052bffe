-- OAuth clients registered with `tessera client add` (configured clients
-- never reach the store). Lists are JSON arrays of strings; the secret is
-- kept only as its SHA-256 digest (NULL for a public client).
CREATE TABLE clients (
    id                        TEXT    PRIMARY KEY NOT NULL,
    name                      TEXT    NOT NULL,
    secret_digest             BLOB,
    redirect_uris             TEXT    NOT NULL,
    post_logout_redirect_uris TEXT    NOT NULL,
    grant_types               TEXT    NOT NULL,
    scopes                    TEXT    NOT NULL,
    first_party               INTEGER NOT NULL,
    created_at                TEXT    NOT NULL
);
