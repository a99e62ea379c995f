-- Regions: every store belongs to a region (a group of nearby cities, written by `db import`),
-- and every stock row, day counter, order and reservation carries the region it lives in. On
-- plain PostgreSQL the column is informative; on Citus (`omniroute db migrate` distributes the
-- tables after the migrations, see api/citus/) it is the distribution key, so that an order
-- served inside its region is a transaction on one node. An order's region is the region of the
-- city nearest its delivery address, whichever store serves it.
ALTER TABLE stores ADD COLUMN region text NOT NULL DEFAULT '';
ALTER TABLE stock ADD COLUMN region text NOT NULL DEFAULT '';
ALTER TABLE store_days ADD COLUMN region text NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN region text NOT NULL DEFAULT '';
ALTER TABLE reservations ADD COLUMN region text NOT NULL DEFAULT '';
