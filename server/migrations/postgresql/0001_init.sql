-- The whole server schema: the template store's tables (as edge_runtime.store.TemplateStore's
-- SQLite ones: embeddings are little-endian float32 bytes) and the server's (api_keys, sessions).
CREATE TABLE templates (
    user_id TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    dim INTEGER NOT NULL,
    template BYTEA NOT NULL,
    images INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, model_fingerprint)
);
CREATE TABLE embeddings (
    user_id TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    idx INTEGER NOT NULL,
    embedding BYTEA NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (user_id, model_fingerprint, idx),
    FOREIGN KEY (user_id, model_fingerprint) REFERENCES templates (user_id, model_fingerprint) ON DELETE CASCADE
);
CREATE TABLE attempts (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    success BOOLEAN NOT NULL,
    reasons TEXT NOT NULL               -- comma-joined reason codes, as the SQLite store
);
CREATE INDEX attempts_user_ts ON attempts (user_id, ts);
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('app', 'admin')),
    secret_sha256 TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accept', 'reject')),
    reasons JSONB NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    nonce_sha256 TEXT NOT NULL,
    seq INTEGER NOT NULL,
    client_t0 DOUBLE PRECISION,
    server_t0 DOUBLE PRECISION,
    last_client_t DOUBLE PRECISION,
    last_server_t DOUBLE PRECISION,
    state BYTEA NOT NULL,
    version INTEGER NOT NULL,
    result_delivered BOOLEAN NOT NULL DEFAULT FALSE,
    detail JSONB NOT NULL
);
CREATE INDEX sessions_pending ON sessions (expires_at) WHERE status = 'pending';
