-- The token buckets of the rate limits shared by every worker process (session starts, admin calls):
-- one row per budget and bucket (a key's or an address's). A bucket missing is full; refilled ones are
-- deleted by the workers' sweep, so the table holds only the buckets used within the last refill time.
CREATE TABLE rate_buckets (
    budget TEXT NOT NULL,               -- "sessions" | "admin"
    who TEXT NOT NULL,                  -- "key:<key id>" | "addr:<client address>"
    tokens REAL NOT NULL,               -- as of updated_at
    updated_at REAL NOT NULL,           -- unix seconds, the server's wall clock
    PRIMARY KEY (budget, who)
) WITHOUT ROWID;
