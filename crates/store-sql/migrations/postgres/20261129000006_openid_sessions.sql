-- OpenID Connect: when and how the person signed in for each session (ID
-- tokens carry auth_time and amr, also after a refresh), and the browser
-- sign-in that started it: RP-initiated logout ends those sessions.
-- Sessions from before have none of these (ID tokens fall back to created_at).
ALTER TABLE sessions ADD COLUMN auth_time timestamptz;
ALTER TABLE sessions ADD COLUMN amr text;
ALTER TABLE sessions ADD COLUMN browser_session_id uuid;
CREATE INDEX sessions_browser_session_id ON sessions (browser_session_id);
CREATE INDEX browser_sessions_id ON browser_sessions (id);
