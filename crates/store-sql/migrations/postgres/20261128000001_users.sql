-- Accounts. username_key / email_key hold the NFKC + lowercase identity
-- computed in auth-core; the unique indexes make case-insensitive uniqueness
-- the database's job, atomically, whatever the collation.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL,
    username_key  text        NOT NULL,
    email         text        NOT NULL,
    email_key     text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    disabled      boolean     NOT NULL DEFAULT false,
    CONSTRAINT users_username_key_unique UNIQUE (username_key),
    CONSTRAINT users_email_key_unique UNIQUE (email_key)
);
