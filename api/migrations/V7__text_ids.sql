-- Ids are the retailer's text (store ids, SKUs, brands), compared exactly: `0001` and `1` are
-- different ids. Numbers stored by earlier versions become their decimal text, so an existing
-- database keeps its stores, stock, day counters and reservations.
--
-- The functions that name stores and SKUs follow: omniroute_reserve (the batch's holds and the
-- cells it reports are [store_id, sku, ...] with text ids), omniroute_feed, and the stock
-- notification, whose items are now fields separated by the unit separator (chr(31)) and items by
-- the record separator (chr(30)): ids may contain commas and semicolons but never control
-- characters. Notifications are cut by length (under PostgreSQL's 8000-byte payload limit), not
-- by a count of items. omniroute_finish and omniroute_expire need no change (their text arrays
-- follow the columns).

ALTER TABLE stores ALTER COLUMN store_id TYPE text USING store_id::text,
                   ALTER COLUMN brand TYPE text USING brand::text;
ALTER TABLE stock ALTER COLUMN store_id TYPE text USING store_id::text,
                  ALTER COLUMN sku TYPE text USING sku::text;
ALTER TABLE store_days ALTER COLUMN store_id TYPE text USING store_id::text;
ALTER TABLE reservations ALTER COLUMN stores TYPE text[] USING stores::text[],
                         ALTER COLUMN skus TYPE text[] USING skus::text[];
ALTER TABLE orders ADD COLUMN customer_id text;

CREATE OR REPLACE FUNCTION omniroute_stock_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    FOR payload IN
        SELECT string_agg(c.item, chr(30))
        FROM (SELECT i.item, (sum(octet_length(i.item) + 1) OVER (ROWS UNBOUNDED PRECEDING)) / 7000 AS chunk
              FROM (SELECT concat_ws(chr(31), n.store_id, n.sku, n.on_hand - n.reserved, n.safety_stock,
                                     n.version) AS item
                    FROM changed n) i) c
        GROUP BY c.chunk
    LOOP
        PERFORM pg_notify('omniroute_stock', payload);
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION omniroute_store_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('omniroute_stores', COALESCE(NEW.store_id, OLD.store_id));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION omniroute_reserve(batch jsonb, reqs text[], resps text[])
RETURNS TABLE (ord integer, outcome text, cells jsonb, full_stores jsonb, request text, response text)
LANGUAGE plpgsql AS $$
DECLARE
    dirty jsonb := '{}'::jsonb;
    o jsonb;
    i integer;
    ok boolean;
    full_ jsonb;
    -- The holds of the orders this call claimed, one element per line.
    h_ord integer[];
    h_id text[];
    h_day bigint[];
    h_exp bigint[];
    h_s text[];
    h_q text[];
    h_n integer[];
    -- Orders answered before (their position and id), and claimed orders without holds.
    e_ord integer[];
    e_id text[];
    z_ord integer[];
    -- The day counters the batch names, locked.
    d_s text[];
    d_day bigint[];
    d_tid tid[];
    -- The stock cells the batch names, locked, with what they can promise; then as updated.
    c_s text[];
    c_q text[];
    c_free integer[];
    c_tid tid[];
    r_s text[];
    r_q text[];
    r_free integer[];
    r_safety integer[];
    r_version bigint[];
    n_rows bigint;
    n_days bigint;
BEGIN
    -- 1. Claim the order ids, in id order; ids already present are answered orders.
    WITH e AS MATERIALIZED (
        SELECT e.v, e.n FROM jsonb_array_elements(batch) WITH ORDINALITY e(v, n)),
    ins AS (
        INSERT INTO orders (order_id, request, response, customer_id)
        SELECT e.v->>'id', reqs[e.n], resps[e.n], e.v->>'c' FROM e ORDER BY e.v->>'id'
        ON CONFLICT (order_id) DO NOTHING
        RETURNING orders.order_id),
    c AS MATERIALIZED (
        SELECT e.v, (e.n - 1)::integer AS o, e.v->>'id' AS id, ins.order_id IS NOT NULL AS claimed
        FROM e LEFT JOIN ins ON ins.order_id = e.v->>'id'),
    h AS MATERIALIZED (
        SELECT c.o, c.id, (c.v->>'day')::bigint AS day, (c.v->>'exp')::bigint AS exp,
               x->>0 AS s, x->>1 AS q, (x->>2)::integer AS n
        FROM c CROSS JOIN LATERAL jsonb_array_elements(c.v->'h') x WHERE c.claimed),
    days AS (
        INSERT INTO store_days (store_id, day, orders)
        SELECT DISTINCT h.s, h.day, 0 FROM h ORDER BY 1, 2 ON CONFLICT DO NOTHING)
    SELECT array_agg(h.o), array_agg(h.id), array_agg(h.day), array_agg(h.exp), array_agg(h.s),
           array_agg(h.q), array_agg(h.n),
           (SELECT array_agg(c.o) FROM c WHERE NOT c.claimed),
           (SELECT array_agg(c.id) FROM c WHERE NOT c.claimed),
           (SELECT array_agg(c.o) FROM c WHERE c.claimed AND jsonb_array_length(c.v->'h') = 0)
    INTO h_ord, h_id, h_day, h_exp, h_s, h_q, h_n, e_ord, e_id, z_ord
    FROM h;

    IF h_ord IS NOT NULL THEN
        -- 2. Lock every stock cell the batch names, in key order (each looked up on its own: a
        --    LATERAL subquery with FOR UPDATE is a nested loop of index probes whatever the
        --    statistics say), with what each can promise.
        SELECT array_agg(l.store_id), array_agg(l.sku), array_agg(l.free), array_agg(l.ctid)
        INTO c_s, c_q, c_free, c_tid
        FROM (SELECT DISTINCT u.s, u.q FROM unnest(h_s, h_q) u(s, q) ORDER BY 1, 2) u
        CROSS JOIN LATERAL (
            SELECT k.store_id, k.sku, k.on_hand - k.reserved - k.safety_stock AS free, k.ctid FROM stock k
            WHERE k.store_id = u.s AND k.sku = u.q FOR UPDATE) l;

        -- 3. Then every day counter, in key order. Orders on a cell or a store and day that
        --    cannot take the whole batch's demand on it go one by one ("dirty"), after the others.
        WITH l AS MATERIALIZED (
            SELECT l.store_id, l.day, l.room, l.ctid
            FROM (SELECT DISTINCT u.s, u.d FROM unnest(h_s, h_day) u(s, d) ORDER BY 1, 2) u
            CROSS JOIN LATERAL (
                SELECT d.store_id, d.day,
                       (SELECT st.capacity_per_day FROM stores st WHERE st.store_id = d.store_id) - d.orders AS room,
                       d.ctid
                FROM store_days d WHERE d.store_id = u.s AND d.day = u.d FOR UPDATE) l),
        h AS (SELECT * FROM unnest(h_id, h_day, h_s, h_q, h_n) u(id, day, s, q, n)),
        bad_cell AS (
            SELECT c.s, c.q
            FROM (SELECT h.s, h.q, sum(h.n) AS n FROM h GROUP BY 1, 2) c
            LEFT JOIN unnest(c_s, c_q, c_free) k(s, q, free) ON k.s = c.s AND k.q = c.q
            WHERE k.s IS NULL OR k.free < c.n),
        bad_slot AS (
            SELECT sl.s, sl.day
            FROM (SELECT h.s, h.day, count(DISTINCT h.id) AS n FROM h GROUP BY 1, 2) sl
            JOIN l ON l.store_id = sl.s AND l.day = sl.day
            WHERE sl.n > l.room)
        SELECT (SELECT array_agg(l.store_id) FROM l), (SELECT array_agg(l.day) FROM l),
               (SELECT array_agg(l.ctid) FROM l),
               (SELECT COALESCE(jsonb_object_agg(z.id, true), '{}'::jsonb) FROM (
                    SELECT DISTINCT h.id FROM h
                    WHERE (h.s, h.q) IN (SELECT bc.s, bc.q FROM bad_cell bc)
                       OR (h.s, h.day) IN (SELECT bs.s, bs.day FROM bad_slot bs)) z)
        INTO d_s, d_day, d_tid, dirty;

        -- 4. The orders not dirty take their stock and their day slots (the rows locked above,
        --    by tuple id: a locked row cannot move), and their reservations are recorded. Each
        --    update counts the rows it wanted and the rows it changed; if a locked row had moved
        --    after all, the call stops rather than reserve part of an order.
        WITH ws AS MATERIALIZED (
            SELECT l.t, a.n
            FROM (SELECT u.s, u.q, sum(u.n) AS n FROM unnest(h_id, h_s, h_q, h_n) u(id, s, q, n)
                  WHERE NOT dirty ? u.id GROUP BY 1, 2) a
            JOIN unnest(c_s, c_q, c_tid) l(s, q, t) ON l.s = a.s AND l.q = a.q),
        us AS (
            UPDATE stock k SET reserved = k.reserved + ws.n, version = k.version + 1
            FROM ws WHERE k.ctid = ws.t
            RETURNING k.store_id, k.sku, k.on_hand - k.reserved AS free, k.safety_stock, k.version),
        wd AS MATERIALIZED (
            SELECT l.t, a.n
            FROM (SELECT u.s, u.d, count(DISTINCT u.id) AS n FROM unnest(h_id, h_s, h_day) u(id, s, d)
                  WHERE NOT dirty ? u.id GROUP BY 1, 2) a
            JOIN unnest(d_s, d_day, d_tid) l(s, day, t) ON l.s = a.s AND l.day = a.d),
        ud AS (UPDATE store_days d SET orders = d.orders + wd.n FROM wd WHERE d.ctid = wd.t RETURNING 1),
        held AS (
            INSERT INTO reservations (order_id, state, day, expires_at, stores, skus, qtys)
            SELECT u.id, 1, min(u.d), min(u.e), array_agg(u.s), array_agg(u.q), array_agg(u.n)
            FROM unnest(h_id, h_day, h_exp, h_s, h_q, h_n) u(id, d, e, s, q, n)
            WHERE NOT dirty ? u.id GROUP BY u.id)
        SELECT array_agg(us.store_id), array_agg(us.sku), array_agg(us.free), array_agg(us.safety_stock),
               array_agg(us.version),
               count(*) - (SELECT count(*) FROM ws), (SELECT count(*) FROM ud) - (SELECT count(*) FROM wd)
        INTO r_s, r_q, r_free, r_safety, r_version, n_rows, n_days FROM us;
        IF n_rows <> 0 THEN
            RAISE EXCEPTION 'omniroute_reserve: a locked stock row was not updated';
        END IF;
        IF n_days <> 0 THEN
            RAISE EXCEPTION 'omniroute_reserve: a locked day counter was not updated';
        END IF;
    END IF;

    -- 5. Reserved in bulk: the cells as they are now. Answered before: their stored answer.
    --    Claimed without holds: recorded, nothing to reserve.
    RETURN QUERY
        SELECT u.o, 'reserved'::text,
               jsonb_agg(jsonb_build_array(r.s, r.q, r.free, r.safety, r.version)),
               '[]'::jsonb, NULL::text, NULL::text
        FROM unnest(h_ord, h_id, h_s, h_q) u(o, id, s, q)
        JOIN unnest(r_s, r_q, r_free, r_safety, r_version) r(s, q, free, safety, version)
          ON r.s = u.s AND r.q = u.q
        WHERE NOT dirty ? u.id GROUP BY u.o
        UNION ALL
        SELECT x.o, 'existing'::text, NULL::jsonb, NULL::jsonb, y.request, y.response
        FROM unnest(e_ord, e_id) x(o, id) JOIN orders y ON y.order_id = x.id
        UNION ALL
        SELECT z.o, 'reserved'::text, '[]'::jsonb, '[]'::jsonb, NULL::text, NULL::text
        FROM unnest(z_ord) z(o);

    IF dirty = '{}'::jsonb THEN
        RETURN;
    END IF;
    -- The dirty orders, one at a time: each all or nothing.
    FOR i IN 0 .. jsonb_array_length(batch) - 1 LOOP
        o := batch -> i;
        CONTINUE WHEN NOT dirty ? (o->>'id');
        -- Capacity: one slot per store of the order.
        SELECT COALESCE(jsonb_agg(jsonb_build_array(d.store_id, d.orders)), '[]'::jsonb) INTO full_
        FROM store_days d
        WHERE (d.store_id, d.day) IN (SELECT DISTINCT (h->>0), (o->>'day')::bigint
                                      FROM jsonb_array_elements(o->'h') h)
          AND d.orders >= (SELECT st.capacity_per_day FROM stores st WHERE st.store_id = d.store_id);
        -- Stock: every line (same cell twice counts twice).
        SELECT full_ = '[]'::jsonb AND bool_and(k.store_id IS NOT NULL
                   AND k.on_hand - k.reserved - k.safety_stock >= w.qty)
        INTO ok
        FROM (SELECT (h->>0) AS store_id, (h->>1) AS sku, sum((h->>2)::integer) AS qty
              FROM jsonb_array_elements(o->'h') h GROUP BY 1, 2) w
        LEFT JOIN stock k ON k.store_id = w.store_id AND k.sku = w.sku;
        IF ok THEN
            UPDATE stock k SET reserved = k.reserved + w.qty, version = k.version + 1
            FROM (SELECT (h->>0) AS store_id, (h->>1) AS sku, sum((h->>2)::integer) AS qty
                  FROM jsonb_array_elements(o->'h') h GROUP BY 1, 2) w
            WHERE k.store_id = w.store_id AND k.sku = w.sku;
            UPDATE store_days d SET orders = d.orders + 1
            WHERE d.day = (o->>'day')::bigint
              AND d.store_id IN (SELECT DISTINCT (h->>0) FROM jsonb_array_elements(o->'h') h);
            INSERT INTO reservations (order_id, state, day, expires_at, stores, skus, qtys)
            SELECT o->>'id', 1, (o->>'day')::bigint, (o->>'exp')::bigint,
                   array_agg((h->>0)), array_agg((h->>1)), array_agg((h->>2)::integer)
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
            WHERE (k.store_id, k.sku) IN (SELECT (h->>0), (h->>1)
                                          FROM jsonb_array_elements(o->'h') h);
    END LOOP;
END $$;

-- As in version 4, index reads whatever the statistics were when a plan was cached; and one
-- generic plan per statement.
ALTER FUNCTION omniroute_reserve(jsonb, text[], text[]) SET enable_seqscan = off;
ALTER FUNCTION omniroute_reserve(jsonb, text[], text[]) SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION omniroute_feed(rows_ jsonb)
RETURNS TABLE (ord integer, on_hand integer, reserved integer, safety_stock integer, version bigint,
               new_row boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    i integer;
    existed boolean;
    res record;
    delta bigint;
BEGIN
    PERFORM 1 FROM stock k
    WHERE (k.store_id, k.sku) IN (SELECT e->>0, e->>1 FROM jsonb_array_elements(rows_) e)
    ORDER BY k.store_id, k.sku FOR UPDATE;
    FOR i IN 0 .. jsonb_array_length(rows_) - 1 LOOP
        r := rows_ -> i;
        SELECT EXISTS (SELECT 1 FROM stock k WHERE k.store_id = r->>0 AND k.sku = r->>1)
        INTO existed;
        IF r->2 <> 'null'::jsonb THEN
            INSERT INTO stock AS k (store_id, sku, on_hand, safety_stock)
            VALUES (r->>0, r->>1, (r->>2)::integer, COALESCE((r->>4)::integer, 0))
            ON CONFLICT (store_id, sku) DO UPDATE
            SET on_hand = EXCLUDED.on_hand,
                safety_stock = COALESCE((r->>4)::integer, k.safety_stock),
                version = k.version + 1
            RETURNING k.on_hand, k.reserved, k.safety_stock, k.version INTO res;
        ELSE
            delta := (r->>3)::bigint;
            IF delta < 0 AND NOT existed THEN
                RAISE EXCEPTION 'delta below zero on a missing row' USING ERRCODE = 'OR001', DETAIL = i::text;
            END IF;
            IF delta > 2147483647 OR (existed AND (SELECT k.on_hand + delta FROM stock k
                    WHERE k.store_id = r->>0 AND k.sku = r->>1) > 2147483647) THEN
                RAISE EXCEPTION 'on_hand would exceed 2147483647' USING ERRCODE = 'OR002', DETAIL = i::text;
            END IF;
            INSERT INTO stock AS k (store_id, sku, on_hand)
            VALUES (r->>0, r->>1, GREATEST(delta, 0)::integer)
            ON CONFLICT (store_id, sku) DO UPDATE
            SET on_hand = (k.on_hand + delta)::integer, version = k.version + 1
            WHERE k.on_hand + delta >= 0
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

