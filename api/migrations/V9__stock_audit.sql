-- The stock audit log: one row per brand of each stock feed, accepted or refused, with the key
-- that sent it (its id, never the key). An accepted feed's rows are written by the same statement
-- that applies it (both or neither); a refused feed's rows on their own.
CREATE TABLE stock_audit (
    seq bigserial PRIMARY KEY,
    at bigint NOT NULL,
    key_id text NOT NULL,
    brand text NOT NULL,
    rows integer NOT NULL,
    accepted boolean NOT NULL,
    reason text
);
CREATE INDEX stock_audit_brand ON stock_audit (brand, seq);
