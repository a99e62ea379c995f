-- API keys managed over the API (POST /v1/admin/keys): one row per key id with its record as
-- JSON: role, brands, the SHA-256 of the key (never the key itself), creation, expiry and
-- revocation times. Every replica reads them at start and every few seconds after.
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    record jsonb NOT NULL
);
