-- omniroute on Citus: run once by `omniroute db migrate` after the versioned migrations, when the
-- database is a Citus coordinator and `stock` is not distributed yet (in one transaction).
--
-- Stores and the small tables every node reads are reference tables (a copy on every node). Stock,
-- day counters, orders, reservations and the change log are distributed by region and
-- co-located: the rows of one region live on one worker, so an order served inside its region is
-- a transaction on that worker alone (`omniroute_reserve_r` below is distributed by its region
-- argument, so Citus sends the whole call there in one round trip).

-- NOTIFY cannot run in a transaction that commits in two phases, and Citus refuses triggers on
-- distributed tables by default: replicas on Citus read `stock_changes` instead (written by the
-- functions below).
DROP TRIGGER IF EXISTS stock_notify_update ON stock;
DROP TRIGGER IF EXISTS stock_notify_insert ON stock;
DROP TRIGGER IF EXISTS stores_notify ON stores;

-- A distributed table's keys include its distribution column.
ALTER TABLE stock DROP CONSTRAINT stock_pkey, ADD PRIMARY KEY (region, store_id, sku);
ALTER TABLE store_days DROP CONSTRAINT store_days_pkey, ADD PRIMARY KEY (region, store_id, day);
ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (region, order_id);
ALTER TABLE reservations DROP CONSTRAINT reservations_pkey, ADD PRIMARY KEY (region, order_id);
-- Reads by order id alone (GET /v1/orders/{id}, ship, cancel) ask every shard.
CREATE INDEX orders_by_id ON orders (order_id);
CREATE INDEX reservations_by_id ON reservations (order_id);

-- Every stock change, one row per region and statement: "store,sku,free,safety,version" items
-- (unit and record separators, as the PostgreSQL notifications). Replicas read the recent rows
-- every few hundred milliseconds and prune the old ones.
CREATE TABLE stock_changes (
    region text NOT NULL,
    at timestamptz NOT NULL,
    items text NOT NULL
);
CREATE INDEX stock_changes_at ON stock_changes (at);

SELECT create_reference_table(t)
FROM unnest(ARRAY['stores', 'api_keys', 'stock_audit', 'feed_messages', 'campaigns',
                  'wallet_entries', 'coupon_issues', 'coupon_redemptions', 'coupon_redeemed',
                  'coupon_customers']) t;
SELECT create_distributed_table('stock', 'region', shard_count := 16);
SELECT create_distributed_table(t, 'region', colocate_with := 'stock')
FROM unnest(ARRAY['store_days', 'orders', 'reservations', 'stock_changes']) t;
