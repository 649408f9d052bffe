-- The admin account list pages in byte order of username_key (COLLATE "C",
-- the same order on every store whatever the database's collation) and
-- searches by prefix on either key: indexes in that collation serve both
-- the ordered range scan and the prefix ranges.
CREATE INDEX users_username_key_bytes ON users (username_key COLLATE "C");
CREATE INDEX users_email_key_bytes ON users (email_key COLLATE "C");
