-- Broker messages applied (stock feeds that came through the broker), by message id: written by
-- the statement that applies the feed (or records its refusal), so that a redelivered message is
-- recognised and acknowledged without being applied again.
CREATE TABLE feed_messages (
    id text PRIMARY KEY,
    applied_at bigint NOT NULL
);
