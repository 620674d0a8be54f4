-- API tokens may expire and may be read-only (a `read` token acts as a
-- viewer whatever its user's role). `last_used_at` is now written at most
-- once a minute per token, not on every request.
ALTER TABLE api_tokens
    ADD COLUMN expires_at TIMESTAMPTZ,
    ADD COLUMN scope TEXT NOT NULL DEFAULT 'all' CHECK (scope IN ('all', 'read'));
