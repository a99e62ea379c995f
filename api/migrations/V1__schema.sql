-- omniroute schema, version 1: stores, stock, daily capacity, orders and reservations, and the
-- functions that change stock. PostgreSQL is the authority for stock; every replica keeps a cache
-- that it refreshes from the notifications the triggers below send.
--
-- Locking discipline (no deadlocks between replicas): a transaction first takes every stock row it
-- will change, in (store_id, sku) order, then every store_days row, in (store_id, day) order.

CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE stores (
    store_id integer PRIMARY KEY,
    brand integer NOT NULL,
    city text NOT NULL,
    geom geography(Point, 4326) NOT NULL,
    pickup boolean NOT NULL,
    ship boolean NOT NULL,
    capacity_per_day integer NOT NULL CHECK (capacity_per_day >= 0),
    -- Opening hours, minutes after local midnight (equal: always open).
    opens_min smallint NOT NULL,
    closes_min smallint NOT NULL
);
CREATE INDEX stores_geom_gist ON stores USING gist (geom);

-- on_hand - reserved - safety_stock is what may be promised. version grows by one on every change
-- of the row, so that caches keep the newest value whatever order notifications arrive in.
CREATE TABLE stock (
    store_id integer NOT NULL,
    sku integer NOT NULL,
    on_hand integer NOT NULL CHECK (on_hand >= 0),
    reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    safety_stock integer NOT NULL DEFAULT 0 CHECK (safety_stock >= 0),
    version bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, sku)
);
CREATE INDEX stock_sku ON stock (sku, store_id);

-- Orders counted against a store's capacity_per_day, per local day.
CREATE TABLE store_days (
    store_id integer NOT NULL,
    day bigint NOT NULL,
    orders integer NOT NULL CHECK (orders >= 0),
    PRIMARY KEY (store_id, day)
);

-- One row per answered order (the idempotency record): a retry with the same request gets the
-- same response, from any replica.
CREATE TABLE orders (
    order_id text PRIMARY KEY,
    request text NOT NULL,
    response text NOT NULL,
    answered_at timestamptz NOT NULL DEFAULT now()
);

-- state: 1 held, 2 committed (shipped), 3 released (cancelled), 4 expired.
CREATE TABLE reservations (
    order_id text PRIMARY KEY REFERENCES orders ON DELETE CASCADE,
    state smallint NOT NULL CHECK (state BETWEEN 1 AND 4),
    day bigint NOT NULL,
    expires_at bigint NOT NULL,
    stores integer[] NOT NULL,
    skus integer[] NOT NULL,
    qtys integer[] NOT NULL
);
CREATE INDEX reservations_held_expiry ON reservations (expires_at) WHERE state = 1;

-- Cache refresh: every stock change is announced as "store_id,sku,free,safety_stock,version"
-- (free = on_hand - reserved); every store change as its store_id.
CREATE FUNCTION omniroute_stock_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('omniroute_stock', NEW.store_id || ',' || NEW.sku || ',' ||
        (NEW.on_hand - NEW.reserved) || ',' || NEW.safety_stock || ',' || NEW.version);
    RETURN NULL;
END $$;
CREATE TRIGGER stock_notify AFTER INSERT OR UPDATE ON stock
    FOR EACH ROW EXECUTE FUNCTION omniroute_stock_notify();

CREATE FUNCTION omniroute_store_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('omniroute_stores', COALESCE(NEW.store_id, OLD.store_id)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER stores_notify AFTER INSERT OR UPDATE OR DELETE ON stores
    FOR EACH ROW EXECUTE FUNCTION omniroute_store_notify();

-- Reserves a batch of routing decisions, each all or nothing, in the order given.
-- batch: [{"id": order_id, "req": canonical request, "resp": response, "day": local day,
--          "exp": expiry (unix s), "h": [[store_id, sku, qty], ...]}, ...]
-- A decision without holds (DC, unfulfillable) only records the answer.
-- One row per order: outcome 'reserved', 'refused' (stock or capacity no longer there: nothing
-- changed) or 'existing' (the order was answered before: its request and response).
-- cells: the state of every cell the order named, [[store_id, sku, free, safety, version], ...];
-- full_stores: stores refused for capacity (with their day's count).
CREATE FUNCTION omniroute_reserve(batch jsonb)
RETURNS TABLE (ord integer, outcome text, cells jsonb, full_stores jsonb, request text, response text)
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    i integer;
    claimed jsonb;
    ok boolean;
    full_ jsonb;
BEGIN
    -- Claim the order ids, in id order. Ids already present are answered orders.
    WITH ins AS (
        INSERT INTO orders (order_id, request, response)
        SELECT e->>'id', e->>'req', e->>'resp' FROM jsonb_array_elements(batch) e ORDER BY e->>'id'
        ON CONFLICT (order_id) DO NOTHING
        RETURNING orders.order_id)
    SELECT COALESCE(jsonb_object_agg(ins.order_id, true), '{}'::jsonb) INTO claimed FROM ins;
    -- Lock every stock row, then every day counter, the batch names, in key order.
    PERFORM 1 FROM stock k
    WHERE (k.store_id, k.sku) IN (
        SELECT (h->>0)::integer, (h->>1)::integer
        FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h)
    ORDER BY k.store_id, k.sku FOR UPDATE;
    INSERT INTO store_days (store_id, day, orders)
    SELECT DISTINCT (h->>0)::integer, (e->>'day')::bigint, 0
    FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h
    ORDER BY 1, 2 ON CONFLICT DO NOTHING;
    PERFORM 1 FROM store_days d
    WHERE (d.store_id, d.day) IN (
        SELECT (h->>0)::integer, (e->>'day')::bigint
        FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h)
    ORDER BY d.store_id, d.day FOR UPDATE;

    FOR i IN 0 .. jsonb_array_length(batch) - 1 LOOP
        o := batch -> i;
        IF NOT claimed ? (o->>'id') THEN
            RETURN QUERY SELECT i, 'existing'::text, NULL::jsonb, NULL::jsonb, x.request, x.response
                FROM orders x WHERE x.order_id = o->>'id';
            CONTINUE;
        END IF;
        IF jsonb_array_length(o->'h') = 0 THEN
            RETURN QUERY SELECT i, 'reserved'::text, '[]'::jsonb, '[]'::jsonb, NULL::text, NULL::text;
            CONTINUE;
        END IF;
        -- Capacity: one slot per store of the order.
        SELECT COALESCE(jsonb_agg(jsonb_build_array(d.store_id, d.orders)), '[]'::jsonb) INTO full_
        FROM store_days d JOIN stores s USING (store_id)
        WHERE d.day = (o->>'day')::bigint AND d.orders >= s.capacity_per_day
          AND d.store_id IN (SELECT (h->>0)::integer FROM jsonb_array_elements(o->'h') h);
        -- Stock: every line (same cell twice counts twice).
        SELECT full_ = '[]'::jsonb AND bool_and(k.store_id IS NOT NULL
                   AND k.on_hand - k.reserved - k.safety_stock >= w.qty)
        INTO ok
        FROM (SELECT (h->>0)::integer AS store_id, (h->>1)::integer AS sku, sum((h->>2)::integer) AS qty
              FROM jsonb_array_elements(o->'h') h GROUP BY 1, 2) w
        LEFT JOIN stock k ON k.store_id = w.store_id AND k.sku = w.sku;
        IF ok THEN
            UPDATE stock k SET reserved = k.reserved + w.qty, version = k.version + 1
            FROM (SELECT (h->>0)::integer AS store_id, (h->>1)::integer AS sku, sum((h->>2)::integer) AS qty
                  FROM jsonb_array_elements(o->'h') h GROUP BY 1, 2) w
            WHERE k.store_id = w.store_id AND k.sku = w.sku;
            UPDATE store_days d SET orders = d.orders + 1
            WHERE d.day = (o->>'day')::bigint
              AND d.store_id IN (SELECT DISTINCT (h->>0)::integer FROM jsonb_array_elements(o->'h') h);
            INSERT INTO reservations (order_id, state, day, expires_at, stores, skus, qtys)
            SELECT o->>'id', 1, (o->>'day')::bigint, (o->>'exp')::bigint,
                   array_agg((h->>0)::integer), array_agg((h->>1)::integer), array_agg((h->>2)::integer)
            FROM jsonb_array_elements(o->'h') h;
        ELSE
            DELETE FROM orders x WHERE x.order_id = o->>'id';
        END IF;
        RETURN QUERY
            SELECT i, CASE WHEN ok THEN 'reserved' ELSE 'refused' END,
                   COALESCE(jsonb_agg(jsonb_build_array(k.store_id, k.sku, k.on_hand - k.reserved,
                                                        k.safety_stock, k.version)), '[]'::jsonb),
                   full_, NULL::text, NULL::text
            FROM stock k
            WHERE (k.store_id, k.sku) IN (SELECT (h->>0)::integer, (h->>1)::integer
                                          FROM jsonb_array_elements(o->'h') h);
    END LOOP;
END $$;

-- Ends a held reservation: target 2 (committed: stock leaves), 3 (released) or 4 (expired).
-- Returns the reservation's state afterwards (0: no reservation) and whether this call changed it.
CREATE FUNCTION omniroute_finish(p_order text, p_target smallint,
                                 OUT state smallint, OUT expires_at bigint, OUT changed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r reservations%ROWTYPE;
BEGIN
    SELECT * INTO r FROM reservations x WHERE x.order_id = p_order FOR UPDATE;
    IF NOT FOUND THEN
        state := 0; changed := false; RETURN;
    END IF;
    expires_at := r.expires_at;
    IF r.state <> 1 THEN
        state := r.state; changed := false; RETURN;
    END IF;
    PERFORM 1 FROM stock k
    WHERE (k.store_id, k.sku) IN (SELECT * FROM unnest(r.stores, r.skus))
    ORDER BY k.store_id, k.sku FOR UPDATE;
    UPDATE stock k SET reserved = k.reserved - w.qty,
                       on_hand = k.on_hand - CASE WHEN p_target = 2 THEN w.qty ELSE 0 END,
                       version = k.version + 1
    FROM (SELECT s AS store_id, q AS sku, sum(n) AS qty FROM unnest(r.stores, r.skus, r.qtys) u(s, q, n)
          GROUP BY 1, 2) w
    WHERE k.store_id = w.store_id AND k.sku = w.sku;
    IF p_target <> 2 THEN
        UPDATE store_days d SET orders = d.orders - 1
        WHERE d.day = r.day AND d.store_id IN (SELECT DISTINCT unnest(r.stores)) AND d.orders > 0;
    END IF;
    UPDATE reservations x SET state = p_target WHERE x.order_id = p_order;
    state := p_target; changed := true;
END $$;

-- Expires held reservations due at p_now (unix s), at most p_limit of them; several replicas may
-- call it at once (each takes reservations the others have not locked). Returns how many.
CREATE FUNCTION omniroute_expire(p_now bigint, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
BEGIN
    SELECT array_agg(order_id ORDER BY order_id) INTO ids FROM (
        SELECT x.order_id FROM reservations x
        WHERE x.state = 1 AND x.expires_at <= p_now
        ORDER BY x.expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED) due;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    -- All stock rows first, in key order, then each reservation.
    PERFORM 1 FROM stock k
    WHERE (k.store_id, k.sku) IN (
        SELECT u.s, u.q FROM reservations x, unnest(x.stores, x.skus) u(s, q) WHERE x.order_id = ANY (ids))
    ORDER BY k.store_id, k.sku FOR UPDATE;
    PERFORM omniroute_finish(id, 4::smallint) FROM unnest(ids) id;
    RETURN array_length(ids, 1);
END $$;

-- Applies a stock feed, all rows or none, in the order given.
-- rows: [[store_id, sku, on_hand or null, delta or null, safety_stock or null], ...]
-- Raises SQLSTATE 'OR001' with the row's index as its detail when a delta would take on_hand below
-- zero. Returns per row: on_hand, reserved, safety_stock, version and whether the row is new.
CREATE FUNCTION omniroute_feed(rows_ jsonb)
RETURNS TABLE (ord integer, on_hand integer, reserved integer, safety_stock integer, version bigint,
               new_row boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    i integer;
    existed boolean;
    res record;
BEGIN
    PERFORM 1 FROM stock k
    WHERE (k.store_id, k.sku) IN (SELECT (e->>0)::integer, (e->>1)::integer FROM jsonb_array_elements(rows_) e)
    ORDER BY k.store_id, k.sku FOR UPDATE;
    FOR i IN 0 .. jsonb_array_length(rows_) - 1 LOOP
        r := rows_ -> i;
        SELECT EXISTS (SELECT 1 FROM stock k WHERE k.store_id = (r->>0)::integer AND k.sku = (r->>1)::integer)
        INTO existed;
        IF r->2 <> 'null'::jsonb THEN
            INSERT INTO stock AS k (store_id, sku, on_hand, safety_stock)
            VALUES ((r->>0)::integer, (r->>1)::integer, (r->>2)::integer, COALESCE((r->>4)::integer, 0))
            ON CONFLICT (store_id, sku) DO UPDATE
            SET on_hand = EXCLUDED.on_hand,
                safety_stock = COALESCE((r->>4)::integer, k.safety_stock),
                version = k.version + 1
            RETURNING k.on_hand, k.reserved, k.safety_stock, k.version INTO res;
        ELSE
            IF (r->>3)::bigint < 0 AND NOT existed THEN
                RAISE EXCEPTION 'delta below zero on a missing row' USING ERRCODE = 'OR001', DETAIL = i::text;
            END IF;
            INSERT INTO stock AS k (store_id, sku, on_hand)
            VALUES ((r->>0)::integer, (r->>1)::integer, GREATEST((r->>3)::integer, 0))
            ON CONFLICT (store_id, sku) DO UPDATE
            SET on_hand = k.on_hand + (r->>3)::integer, version = k.version + 1
            WHERE k.on_hand + (r->>3)::bigint >= 0
            RETURNING k.on_hand, k.reserved, k.safety_stock, k.version INTO res;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'on_hand would go below zero' USING ERRCODE = 'OR001', DETAIL = i::text;
            END IF;
        END IF;
        ord := i; on_hand := res.on_hand; reserved := res.reserved; safety_stock := res.safety_stock;
        version := res.version; new_row := NOT existed;
        RETURN NEXT;
    END LOOP;
END $$;
