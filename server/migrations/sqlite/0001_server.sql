-- The server's tables beside edge_runtime.store.TemplateStore's (templates, embeddings, attempts),
-- in the same SQLite file. TemplateStore's PRAGMA user_version is not touched.
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('app', 'admin')),
    secret_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model_fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accept', 'reject')),
    reasons TEXT NOT NULL,              -- JSON list of reason codes
    created REAL NOT NULL,
    expires_at REAL NOT NULL,
    nonce_sha256 TEXT NOT NULL,
    seq INTEGER NOT NULL,
    client_t0 REAL,
    server_t0 REAL,
    last_client_t REAL,
    last_server_t REAL,
    state BLOB NOT NULL,
    version INTEGER NOT NULL,
    result_delivered INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL                -- JSON object
);
-- the expiry sweep reads only the pending sessions
CREATE INDEX sessions_pending ON sessions (expires_at) WHERE status = 'pending';
