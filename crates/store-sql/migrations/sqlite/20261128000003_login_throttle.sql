-- Failed-login counters per throttle key (an account id, or the login
-- string when no account has it), shared by every replica.
CREATE TABLE login_throttle (
    key            TEXT PRIMARY KEY NOT NULL,
    failures       INTEGER NOT NULL,
    window_started TEXT NOT NULL,
    locked_until   TEXT,
    lockouts       INTEGER NOT NULL
);
