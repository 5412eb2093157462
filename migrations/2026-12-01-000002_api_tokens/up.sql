-- Tokens of the read API. Only a token's SHA-256 is kept: a leaked table grants nothing. A token
-- with a project_id sees that project alone; one without sees everything. Revoked tokens stay
-- (with when) so a name's history can be told; a name is unique among live tokens.
CREATE TABLE api_tokens (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL,
    token_sha256 bytea       NOT NULL UNIQUE,
    project_id   bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX api_tokens_live_name_key ON api_tokens (name) WHERE revoked_at IS NULL;
