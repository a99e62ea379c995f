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
    -- Always an order of `orders` (written by the same function; no foreign key, to keep the
    -- per-row check off the reservation path).
    order_id text PRIMARY KEY,
    state smallint NOT NULL CHECK (state BETWEEN 1 AND 4),
    day bigint NOT NULL,
    expires_at bigint NOT NULL,
    stores integer[] NOT NULL,
    skus integer[] NOT NULL,
    qtys integer[] NOT NULL
);
CREATE INDEX reservations_held_expiry ON reservations (expires_at) WHERE state = 1;

-- Cache refresh: every stock change is announced on channel omniroute_stock as
-- "store_id,sku,free,safety_stock,version" items separated by ';' (free = on_hand - reserved),
-- one notification per statement (split to stay under the 8000-byte payload limit).
CREATE FUNCTION omniroute_stock_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    FOR payload IN
        SELECT string_agg(c.item, ';')
        FROM (SELECT n.store_id || ',' || n.sku || ',' || (n.on_hand - n.reserved) || ',' ||
                     n.safety_stock || ',' || n.version AS item,
                     (row_number() OVER ()) / 200 AS chunk
              FROM changed n) c
        GROUP BY c.chunk
    LOOP
        PERFORM pg_notify('omniroute_stock', payload);
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER stock_notify_update AFTER UPDATE ON stock REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION omniroute_stock_notify();
CREATE TRIGGER stock_notify_insert AFTER INSERT ON stock REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION omniroute_stock_notify();

CREATE FUNCTION omniroute_store_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('omniroute_stores', COALESCE(NEW.store_id, OLD.store_id)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER stores_notify AFTER INSERT OR UPDATE OR DELETE ON stores
    FOR EACH ROW EXECUTE FUNCTION omniroute_store_notify();

-- Reserves a batch of routing decisions, each all or nothing, in the order given.
-- batch: [{"id": order_id, "day": local day, "exp": expiry (unix s), "h": [[store_id, sku, qty], ...]}, ...]
-- reqs, resps: each order's canonical request and response, in batch order (kept out of the
-- JSON so that the database does not parse them).
-- A decision without holds (DC, unfulfillable) only records the answer.
-- One row per order: outcome 'reserved', 'refused' (stock or capacity no longer there: nothing
-- changed) or 'existing' (the order was answered before: its request and response).
-- cells: the state of every cell the order named, [[store_id, sku, free, safety, version], ...];
-- full_stores: stores refused for capacity (with their day's count).
CREATE FUNCTION omniroute_reserve(batch jsonb, reqs text[], resps text[])
RETURNS TABLE (ord integer, outcome text, cells jsonb, full_stores jsonb, request text, response text)
LANGUAGE plpgsql AS $$
DECLARE
    claimed jsonb;
    dirty jsonb;
    o jsonb;
    i integer;
    ok boolean;
    full_ jsonb;
    -- The holds of the orders this call claimed, one element per line.
    h_ord integer[];
    h_id text[];
    h_day bigint[];
    h_exp bigint[];
    h_s integer[];
    h_q integer[];
    h_n integer[];
    -- The stock rows the batch names, locked, with what they can promise; then as updated.
    c_s integer[];
    c_q integer[];
    c_free integer[];
    r_s integer[];
    r_q integer[];
    r_free integer[];
    r_safety integer[];
    r_version bigint[];
    -- The day counters the batch names, locked, with how many more orders each can take.
    d_s integer[];
    d_day bigint[];
    d_left integer[];
BEGIN
    -- Claim the order ids, in id order. Ids already present are answered orders.
    WITH ins AS (
        INSERT INTO orders (order_id, request, response)
        SELECT e.v->>'id', reqs[e.n], resps[e.n] FROM jsonb_array_elements(batch) WITH ORDINALITY e(v, n)
        ORDER BY e.v->>'id'
        ON CONFLICT (order_id) DO NOTHING
        RETURNING orders.order_id)
    SELECT COALESCE(jsonb_object_agg(ins.order_id, true), '{}'::jsonb) INTO claimed FROM ins;

    SELECT array_agg(e.n - 1), array_agg(e.v->>'id'), array_agg((e.v->>'day')::bigint),
           array_agg((e.v->>'exp')::bigint), array_agg((x->>0)::integer), array_agg((x->>1)::integer),
           array_agg((x->>2)::integer)
    INTO h_ord, h_id, h_day, h_exp, h_s, h_q, h_n
    FROM jsonb_array_elements(batch) WITH ORDINALITY e(v, n), jsonb_array_elements(e.v->'h') x
    WHERE claimed ? (e.v->>'id');

    IF h_ord IS NOT NULL THEN
        -- Lock every stock row, then every day counter, the batch names, in key order.
        SELECT array_agg(l.store_id), array_agg(l.sku), array_agg(l.free) INTO c_s, c_q, c_free FROM (
            SELECT k.store_id, k.sku, k.on_hand - k.reserved - k.safety_stock AS free FROM stock k
            WHERE (k.store_id, k.sku) IN (SELECT * FROM unnest(h_s, h_q))
            ORDER BY k.store_id, k.sku FOR UPDATE) l;
        INSERT INTO store_days (store_id, day, orders)
        SELECT DISTINCT u.s, u.d, 0 FROM unnest(h_s, h_day) u(s, d) ORDER BY 1, 2 ON CONFLICT DO NOTHING;
        SELECT array_agg(l.store_id), array_agg(l.day), array_agg(l.room) INTO d_s, d_day, d_left FROM (
            SELECT d.store_id, d.day, st.capacity_per_day - d.orders AS room
            FROM store_days d JOIN stores st USING (store_id)
            WHERE d.store_id = ANY (h_s) AND d.day = ANY (h_day)
            ORDER BY d.store_id, d.day FOR UPDATE OF d) l;

        -- Fast path: every order whose cells and stores can take the whole batch's demand on
        -- them is reserved in bulk; the others ("dirty") go one by one, in batch order, below.
        WITH h AS (SELECT * FROM unnest(h_id, h_day, h_s, h_q, h_n) u(id, day, s, q, n)),
        cell AS (SELECT h.s, h.q, sum(h.n) AS n FROM h GROUP BY 1, 2),
        locked AS (SELECT * FROM unnest(c_s, c_q, c_free) l(s, q, free)),
        bad_cell AS (
            SELECT c.s, c.q FROM cell c LEFT JOIN locked l ON l.s = c.s AND l.q = c.q
            WHERE l.s IS NULL OR l.free < c.n),
        slot AS (SELECT h.s, h.day, count(DISTINCT h.id) AS n FROM h GROUP BY 1, 2),
        bad_slot AS (
            SELECT sl.s, sl.day FROM slot sl
            JOIN unnest(d_s, d_day, d_left) d(s, day, room) ON d.s = sl.s AND d.day = sl.day
            WHERE sl.n > d.room)
        SELECT COALESCE(jsonb_object_agg(z.id, true), '{}'::jsonb) INTO dirty FROM (
            SELECT DISTINCT h.id FROM h
            WHERE (h.s, h.q) IN (SELECT bc.s, bc.q FROM bad_cell bc)
               OR (h.s, h.day) IN (SELECT bs.s, bs.day FROM bad_slot bs)) z;

        WITH u AS (
            UPDATE stock k SET reserved = k.reserved + w.n, version = k.version + 1
            FROM (SELECT u.s, u.q, sum(u.n) AS n FROM unnest(h_id, h_s, h_q, h_n) u(id, s, q, n)
                  WHERE NOT dirty ? u.id GROUP BY 1, 2) w
            WHERE k.store_id = w.s AND k.sku = w.q
            RETURNING k.store_id, k.sku, k.on_hand - k.reserved AS free, k.safety_stock, k.version)
        SELECT array_agg(u.store_id), array_agg(u.sku), array_agg(u.free), array_agg(u.safety_stock),
               array_agg(u.version)
        INTO r_s, r_q, r_free, r_safety, r_version FROM u;
        UPDATE store_days d SET orders = d.orders + w.n
        FROM (SELECT u.s, u.d, count(DISTINCT u.id) AS n FROM unnest(h_id, h_s, h_day) u(id, s, d)
              WHERE NOT dirty ? u.id GROUP BY 1, 2) w
        WHERE d.store_id = w.s AND d.day = w.d;
        INSERT INTO reservations (order_id, state, day, expires_at, stores, skus, qtys)
        SELECT u.id, 1, min(u.d), min(u.e), array_agg(u.s), array_agg(u.q), array_agg(u.n)
        FROM unnest(h_id, h_day, h_exp, h_s, h_q, h_n) u(id, d, e, s, q, n)
        WHERE NOT dirty ? u.id GROUP BY u.id;
        RETURN QUERY
            SELECT u.o, 'reserved'::text,
                   jsonb_agg(jsonb_build_array(r.s, r.q, r.free, r.safety, r.version)),
                   '[]'::jsonb, NULL::text, NULL::text
            FROM unnest(h_ord, h_id, h_s, h_q) u(o, id, s, q)
            JOIN unnest(r_s, r_q, r_free, r_safety, r_version) r(s, q, free, safety, version)
              ON r.s = u.s AND r.q = u.q
            WHERE NOT dirty ? u.id GROUP BY u.o;
    ELSE
        dirty := '{}'::jsonb;
    END IF;

    -- Answered before: their stored answer. Claimed without holds: recorded, nothing to reserve.
    RETURN QUERY
        SELECT (e.n - 1)::integer, 'existing'::text, NULL::jsonb, NULL::jsonb, x.request, x.response
        FROM jsonb_array_elements(batch) WITH ORDINALITY e(v, n) JOIN orders x ON x.order_id = e.v->>'id'
        WHERE NOT claimed ? (e.v->>'id');
    RETURN QUERY
        SELECT (e.n - 1)::integer, 'reserved'::text, '[]'::jsonb, '[]'::jsonb, NULL::text, NULL::text
        FROM jsonb_array_elements(batch) WITH ORDINALITY e(v, n)
        WHERE claimed ? (e.v->>'id') AND jsonb_array_length(e.v->'h') = 0;

    -- The dirty orders, one at a time: each all or nothing.
    FOR i IN 0 .. jsonb_array_length(batch) - 1 LOOP
        o := batch -> i;
        CONTINUE WHEN NOT dirty ? (o->>'id');
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
