-- The audit log: append-only (the retention purge is the only delete).
-- `id` is a UUIDv7, so it sorts by time and serves as the listing cursor.
CREATE TABLE audit_log (
    id             uuid        PRIMARY KEY,
    time           timestamptz NOT NULL,
    actor          text        NOT NULL,
    action         text        NOT NULL,
    target         text,
    outcome        text        NOT NULL,
    client_address text,
    request_id     text
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
