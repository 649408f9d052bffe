-- The admin account list pages in byte order of username_key and searches
-- by prefix on either key. SQLite's default collation is already binary,
-- so the unique indexes users_username_key and users_email_key serve both
-- the ordered range scan and the prefix ranges: nothing to add. This step
-- keeps the two dialects' migration histories alike (the PostgreSQL step
-- adds indexes in COLLATE "C").
SELECT 1;
