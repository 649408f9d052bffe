-- Failed-login counters per throttle key (an account id, or the login
-- string when no account has it), shared by every replica.
CREATE TABLE login_throttle (
    key            text PRIMARY KEY,
    failures       integer NOT NULL,
    window_started timestamptz NOT NULL,
    locked_until   timestamptz,
    lockouts       integer NOT NULL
);
