-- omniroute schema, version 4.
--
-- omniroute_reserve as in version 2, except how it finds the rows it locks and updates. The
-- fast path locked stock and day counters with `(key) IN (SELECT * FROM unnest(...))` and updated
-- them with a join on the key; for the day counters the planner answered with a hash or merge
-- join over the whole, busy, table (a sequential or full index scan per batch: 5.5 of a 14.5 ms
-- batch, found with auto_explain while the table held a few thousand rows, and growing with it).
-- Now each distinct key is looked up on its own, in key order (a LATERAL subquery with FOR
-- UPDATE cannot be flattened, so the plan is a nested loop of index probes whatever the
-- statistics say), and the updates address the very row versions just locked by tuple id (a
-- TID scan: no second index lookup). Locks are still taken in (store_id, sku) and then
-- (store_id, day) order, and a locked row cannot move, so its tuple id stays valid until commit.
--
-- With every lookup's shape fixed, the function no longer needs to be planned on every call
-- (version 3): sequential scans are turned off inside it, so that a plan cached while a table
-- was empty still reads by index when the table has grown.
CREATE OR REPLACE FUNCTION omniroute_reserve(batch jsonb, reqs text[], resps text[])
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
    c_tid tid[];
    r_s integer[];
    r_q integer[];
    r_free integer[];
    r_safety integer[];
    r_version bigint[];
    -- The day counters the batch names, locked, with how many more orders each can take.
    d_s integer[];
    d_day bigint[];
    d_left integer[];
    d_tid tid[];
    n_rows bigint;
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
        SELECT array_agg(l.store_id), array_agg(l.sku), array_agg(l.free), array_agg(l.ctid)
        INTO c_s, c_q, c_free, c_tid
        FROM (SELECT DISTINCT u.s, u.q FROM unnest(h_s, h_q) u(s, q) ORDER BY 1, 2) u
        CROSS JOIN LATERAL (
            SELECT k.store_id, k.sku, k.on_hand - k.reserved - k.safety_stock AS free, k.ctid FROM stock k
            WHERE k.store_id = u.s AND k.sku = u.q FOR UPDATE) l;
        INSERT INTO store_days (store_id, day, orders)
        SELECT DISTINCT u.s, u.d, 0 FROM unnest(h_s, h_day) u(s, d) ORDER BY 1, 2 ON CONFLICT DO NOTHING;
        SELECT array_agg(l.store_id), array_agg(l.day), array_agg(l.room), array_agg(l.ctid)
        INTO d_s, d_day, d_left, d_tid
        FROM (SELECT DISTINCT u.s, u.d FROM unnest(h_s, h_day) u(s, d) ORDER BY 1, 2) u
        CROSS JOIN LATERAL (
            SELECT d.store_id, d.day,
                   (SELECT st.capacity_per_day FROM stores st WHERE st.store_id = d.store_id) - d.orders AS room,
                   d.ctid
            FROM store_days d WHERE d.store_id = u.s AND d.day = u.d FOR UPDATE) l;

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

        -- Each update names the rows it wants (w) and the rows it changed (u); a row locked above
        -- cannot have moved, but if one had, the call stops rather than reserve part of an order.
        WITH w AS (
            SELECT l.t, a.n
            FROM (SELECT u.s, u.q, sum(u.n) AS n FROM unnest(h_id, h_s, h_q, h_n) u(id, s, q, n)
                  WHERE NOT dirty ? u.id GROUP BY 1, 2) a
            JOIN unnest(c_s, c_q, c_tid) l(s, q, t) ON l.s = a.s AND l.q = a.q),
        u AS (
            UPDATE stock k SET reserved = k.reserved + w.n, version = k.version + 1
            FROM w WHERE k.ctid = w.t
            RETURNING k.store_id, k.sku, k.on_hand - k.reserved AS free, k.safety_stock, k.version)
        SELECT array_agg(u.store_id), array_agg(u.sku), array_agg(u.free), array_agg(u.safety_stock),
               array_agg(u.version), count(*) - (SELECT count(*) FROM w)
        INTO r_s, r_q, r_free, r_safety, r_version, n_rows FROM u;
        IF n_rows <> 0 THEN
            RAISE EXCEPTION 'omniroute_reserve: a locked stock row was not updated';
        END IF;
        WITH w AS (
            SELECT l.t, a.n
            FROM (SELECT u.s, u.d, count(DISTINCT u.id) AS n FROM unnest(h_id, h_s, h_day) u(id, s, d)
                  WHERE NOT dirty ? u.id GROUP BY 1, 2) a
            JOIN unnest(d_s, d_day, d_tid) l(s, day, t) ON l.s = a.s AND l.day = a.d),
        u AS (UPDATE store_days d SET orders = d.orders + w.n FROM w WHERE d.ctid = w.t RETURNING 1)
        SELECT count(*) - (SELECT count(*) FROM w) INTO n_rows FROM u;
        IF n_rows <> 0 THEN
            RAISE EXCEPTION 'omniroute_reserve: a locked day counter was not updated';
        END IF;
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
        FROM store_days d
        WHERE (d.store_id, d.day) IN (SELECT DISTINCT (h->>0)::integer, (o->>'day')::bigint
                                      FROM jsonb_array_elements(o->'h') h)
          AND d.orders >= (SELECT st.capacity_per_day FROM stores st WHERE st.store_id = d.store_id);
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

ALTER FUNCTION omniroute_reserve(jsonb, text[], text[]) RESET plan_cache_mode;
ALTER FUNCTION omniroute_reserve(jsonb, text[], text[]) SET enable_seqscan = off;
