-- omniroute on Citus: the functions that change stock, by region. Applied by `omniroute db migrate`
-- on every run against a Citus coordinator (after distribute.sql), so that they follow the
-- schema; every statement names the region of the rows it touches, so that Citus routes it to
-- one shard (run locally when the call already runs on that shard's worker).
--
-- Locking discipline as on PostgreSQL (no deadlocks between replicas): a call first takes every
-- stock row it will change, in (region, store_id, sku) order, then every day counter, in
-- (region, store_id, day) order.

-- A stock row as a change item: store, sku, free, safety stock, version (unit separators).
CREATE OR REPLACE FUNCTION omniroute_item(s text, q text, free bigint, safety integer, v bigint)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT s || chr(31) || q || chr(31) || free || chr(31) || safety || chr(31) || v
$$;

-- Records changed items of one region for the replicas' caches (record separators between them).
CREATE OR REPLACE FUNCTION omniroute_log_changes(p_region text, items text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    joined text;
BEGIN
    IF items IS NULL OR cardinality(items) = 0 THEN
        RETURN;
    END IF;
    joined := array_to_string(items, chr(30));
    INSERT INTO stock_changes (region, at, items) VALUES (p_region, clock_timestamp(), joined);
END $$;

-- Reserves a batch of routing decisions of orders of region p_region, each all or nothing, in the
-- order given. Same arguments and result as omniroute_reserve (V7): batch
-- [{"id", "day", "exp", "c", "h": [[store_id, sku, qty], ...]}, ...]. A hold in a store of
-- another region changes that region's rows in the same (distributed) transaction.
CREATE OR REPLACE FUNCTION omniroute_reserve_r(p_region text, batch jsonb, reqs text[], resps text[])
RETURNS TABLE (ord integer, outcome text, cells jsonb, full_stores jsonb, request text, response text)
LANGUAGE plpgsql AS $$
DECLARE
    regs jsonb;
    g text;
    o jsonb;
    i integer;
    ok boolean;
    n_ok bigint;
    full_ jsonb;
    got jsonb;
    part jsonb;
    items text[];
    -- All holds of the batch: store, sku, region, day.
    b_s text[];
    b_q text[];
    b_g text[];
    b_d bigint[];
    -- The order's lines summed per cell, and its stores.
    l_s text[];
    l_q text[];
    l_n integer[];
    l_g text[];
    a_s text[];
    a_q text[];
    a_n integer[];
BEGIN
    SELECT array_agg(h->>0), array_agg(h->>1), array_agg((e->>'day')::bigint)
    INTO b_s, b_q, b_d
    FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h;
    -- The stores' regions (stores is a reference table: a read on this node).
    SELECT COALESCE(jsonb_object_agg(st.store_id, st.region), '{}'::jsonb) INTO regs
    FROM stores st WHERE st.store_id = ANY (b_s);
    SELECT array_agg(COALESCE(regs->>s, '')) INTO b_g FROM unnest(b_s) s;

    -- 1. Lock every stock row, then every day counter (created when missing), in key order.
    FOR g IN SELECT DISTINCT x FROM unnest(b_g) x ORDER BY 1 LOOP
        PERFORM 1 FROM stock k
        WHERE k.region = g AND (k.store_id, k.sku) IN (
            SELECT u.s, u.q FROM unnest(b_s, b_q, b_g) u(s, q, rg) WHERE u.rg = g)
        ORDER BY k.store_id, k.sku FOR UPDATE;
    END LOOP;
    FOR g IN SELECT DISTINCT x FROM unnest(b_g) x ORDER BY 1 LOOP
        INSERT INTO store_days (region, store_id, day, orders)
        SELECT g, u.s, u.d, 0
        FROM (SELECT DISTINCT u.s, u.d FROM unnest(b_s, b_g, b_d) u(s, rg, d) WHERE u.rg = g) u
        ORDER BY 2, 3 ON CONFLICT DO NOTHING;
        PERFORM 1 FROM store_days d
        WHERE d.region = g AND (d.store_id, d.day) IN (
            SELECT u.s, u.d FROM unnest(b_s, b_g, b_d) u(s, rg, d) WHERE u.rg = g)
        ORDER BY d.store_id, d.day FOR UPDATE;
    END LOOP;

    -- 2. Each order in turn: claim its id, check and take its stock and day slots.
    FOR i IN 0 .. jsonb_array_length(batch) - 1 LOOP
        o := batch -> i;
        INSERT INTO orders (region, order_id, request, response, customer_id)
        VALUES (p_region, o->>'id', reqs[i + 1], resps[i + 1], o->>'c')
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN QUERY SELECT i, 'existing'::text, NULL::jsonb, NULL::jsonb, y.request, y.response
                FROM orders y WHERE y.region = p_region AND y.order_id = o->>'id';
            CONTINUE;
        END IF;
        IF jsonb_array_length(o->'h') = 0 THEN
            RETURN QUERY SELECT i, 'reserved'::text, '[]'::jsonb, '[]'::jsonb, NULL::text, NULL::text;
            CONTINUE;
        END IF;
        SELECT array_agg(w.s ORDER BY w.s, w.q), array_agg(w.q ORDER BY w.s, w.q),
               array_agg(w.n ORDER BY w.s, w.q), array_agg(COALESCE(regs->>w.s, '') ORDER BY w.s, w.q)
        INTO l_s, l_q, l_n, l_g
        FROM (SELECT h->>0 AS s, h->>1 AS q, sum((h->>2)::integer)::integer AS n
              FROM jsonb_array_elements(o->'h') h GROUP BY 1, 2) w;
        SELECT array_agg(h->>0), array_agg(h->>1), array_agg((h->>2)::integer)
        INTO a_s, a_q, a_n FROM jsonb_array_elements(o->'h') h;
        ok := true;
        full_ := '[]'::jsonb;
        FOR g IN SELECT DISTINCT x FROM unnest(l_g) x ORDER BY 1 LOOP
            SELECT COALESCE(jsonb_agg(jsonb_build_array(d.store_id, d.orders)), '[]'::jsonb) INTO part
            FROM store_days d JOIN stores st ON st.store_id = d.store_id
            WHERE d.region = g AND d.day = (o->>'day')::bigint
              AND d.store_id IN (SELECT u.s FROM unnest(l_s, l_g) u(s, rg) WHERE u.rg = g)
              AND d.orders >= st.capacity_per_day;
            full_ := full_ || part;
            SELECT count(*) INTO n_ok
            FROM stock k JOIN unnest(l_s, l_q, l_n, l_g) u(s, q, n, rg)
              ON k.store_id = u.s AND k.sku = u.q
            WHERE k.region = g AND u.rg = g AND k.on_hand - k.reserved - k.safety_stock >= u.n;
            ok := ok AND n_ok = (SELECT count(*) FROM unnest(l_g) x WHERE x = g);
        END LOOP;
        ok := ok AND full_ = '[]'::jsonb;
        got := '[]'::jsonb;
        FOR g IN SELECT DISTINCT x FROM unnest(l_g) x ORDER BY 1 LOOP
            IF ok THEN
                WITH upd AS (
                    UPDATE stock k SET reserved = k.reserved + u.n, version = k.version + 1
                    FROM unnest(l_s, l_q, l_n, l_g) u(s, q, n, rg)
                    WHERE k.region = g AND u.rg = g AND k.store_id = u.s AND k.sku = u.q
                    RETURNING k.store_id, k.sku, k.on_hand - k.reserved AS free, k.safety_stock, k.version)
                SELECT jsonb_agg(jsonb_build_array(upd.store_id, upd.sku, upd.free, upd.safety_stock, upd.version)),
                       array_agg(omniroute_item(upd.store_id, upd.sku, upd.free, upd.safety_stock, upd.version))
                INTO part, items FROM upd;
                PERFORM omniroute_log_changes(g, items);
                UPDATE store_days d SET orders = d.orders + 1
                WHERE d.region = g AND d.day = (o->>'day')::bigint
                  AND d.store_id IN (SELECT u.s FROM unnest(l_s, l_g) u(s, rg) WHERE u.rg = g);
            ELSE
                SELECT jsonb_agg(jsonb_build_array(k.store_id, k.sku, k.on_hand - k.reserved,
                                                   k.safety_stock, k.version))
                INTO part
                FROM stock k JOIN unnest(l_s, l_q, l_g) u(s, q, rg) ON k.store_id = u.s AND k.sku = u.q
                WHERE k.region = g AND u.rg = g;
            END IF;
            got := got || COALESCE(part, '[]'::jsonb);
        END LOOP;
        IF ok THEN
            INSERT INTO reservations (region, order_id, state, day, expires_at, stores, skus, qtys)
            VALUES (p_region, o->>'id', 1, (o->>'day')::bigint, (o->>'exp')::bigint, a_s, a_q, a_n);
        ELSE
            DELETE FROM orders y WHERE y.region = p_region AND y.order_id = o->>'id';
        END IF;
        RETURN QUERY SELECT i, CASE WHEN ok THEN 'reserved' ELSE 'refused' END, got, full_,
                            NULL::text, NULL::text;
    END LOOP;
END $$;

-- Reserves a batch of routing decisions whose rows all live in one shard (the orders' regions and
-- their stores' regions hash to it), each all or nothing, in the order given: a few set-based
-- statements for the whole batch, each routed to that one shard (Citus plans every statement on
-- a distributed table anew, so statements per call, not per order, set the cost). Same result as
-- omniroute_reserve_r; each order carries its region as "g". p_key: one of those regions (the
-- call's distribution argument, which sends it to the worker holding the shard).
CREATE OR REPLACE FUNCTION omniroute_reserve_s(p_key text, batch jsonb, reqs text[], resps text[])
RETURNS TABLE (ord integer, outcome text, cells jsonb, full_stores jsonb, request text, response text)
LANGUAGE plpgsql AS $$
DECLARE
    us constant text := chr(31);
    sr jsonb;
    regs text[];
    claimed jsonb;
    -- Locked stock rows, "store<US>sku" -> [promisable, free, safety, version, region, taken].
    c jsonb;
    -- Locked day counters, "store<US>day" -> [room, orders, taken].
    dd jsonb;
    o jsonb;
    i integer;
    ok boolean;
    k text;
    n integer;
    x jsonb;
    lines jsonb;
    full_ jsonb;
    r_ord integer[] := '{}';
    r_kind text[] := '{}';
    r_keys jsonb[] := '{}';
    r_full jsonb[] := '{}';
    ok_ids text[] := '{}';
    bad_ids text[] := '{}';
BEGIN
    SELECT COALESCE(jsonb_object_agg(st.store_id, st.region), '{}'::jsonb) INTO sr
    FROM stores st
    WHERE st.store_id IN (SELECT h->>0 FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h);
    SELECT array_agg(DISTINCT y.g) INTO regs FROM (
        SELECT e->>'g' AS g FROM jsonb_array_elements(batch) e
        UNION ALL
        SELECT COALESCE(sr->>(h->>0), '') FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h) y;

    -- 1. Claim the order ids, in key order; ids already present are answered orders.
    WITH ins AS (
        INSERT INTO orders (region, order_id, request, response, customer_id)
        SELECT e.v->>'g', e.v->>'id', reqs[e.n], resps[e.n], e.v->>'c'
        FROM jsonb_array_elements(batch) WITH ORDINALITY e(v, n) ORDER BY 1, 2
        ON CONFLICT DO NOTHING RETURNING orders.order_id)
    SELECT COALESCE(jsonb_object_agg(ins.order_id, true), '{}'::jsonb) INTO claimed FROM ins;

    -- 2. Lock the stock rows the claimed orders name, in key order; then read what each holds.
    PERFORM 1 FROM stock kk
    WHERE kk.region = ANY (regs) AND (kk.store_id, kk.sku) IN (
        SELECT h->>0, h->>1 FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h
        WHERE claimed ? (e->>'id'))
    ORDER BY kk.region, kk.store_id, kk.sku FOR UPDATE;
    SELECT COALESCE(jsonb_object_agg(kk.store_id || us || kk.sku,
               jsonb_build_array(kk.on_hand - kk.reserved - kk.safety_stock, kk.on_hand - kk.reserved,
                                 kk.safety_stock, kk.version, kk.region, 0)), '{}'::jsonb)
    INTO c
    FROM stock kk
    WHERE kk.region = ANY (regs) AND (kk.store_id, kk.sku) IN (
        SELECT h->>0, h->>1 FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h
        WHERE claimed ? (e->>'id'));

    -- 3. The day counters: created when missing, locked in key order, with the room left.
    INSERT INTO store_days (region, store_id, day, orders)
    SELECT DISTINCT COALESCE(sr->>(h->>0), ''), h->>0, (e->>'day')::bigint, 0
    FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h
    WHERE claimed ? (e->>'id') ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING;
    PERFORM 1 FROM store_days sd
    WHERE sd.region = ANY (regs) AND (sd.store_id, sd.day) IN (
        SELECT h->>0, (e->>'day')::bigint FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h
        WHERE claimed ? (e->>'id'))
    ORDER BY sd.region, sd.store_id, sd.day FOR UPDATE;
    SELECT COALESCE(jsonb_object_agg(sd.store_id || us || sd.day,
               jsonb_build_array(st.capacity_per_day - sd.orders, sd.orders, 0)), '{}'::jsonb)
    INTO dd
    FROM store_days sd JOIN stores st ON st.store_id = sd.store_id
    WHERE sd.region = ANY (regs) AND (sd.store_id, sd.day) IN (
        SELECT h->>0, (e->>'day')::bigint FROM jsonb_array_elements(batch) e, jsonb_array_elements(e->'h') h
        WHERE claimed ? (e->>'id'));

    -- 4. Each order in turn, all or nothing, against what the orders before it left.
    FOR i IN 0 .. jsonb_array_length(batch) - 1 LOOP
        o := batch -> i;
        IF NOT claimed ? (o->>'id') THEN
            r_ord := r_ord || i; r_kind := r_kind || 'existing'::text;
            r_keys := r_keys || 'null'::jsonb; r_full := r_full || 'null'::jsonb;
            CONTINUE;
        END IF;
        SELECT COALESCE(jsonb_object_agg(w.k, w.n), '{}'::jsonb) INTO lines
        FROM (SELECT (h->>0) || us || (h->>1) AS k, sum((h->>2)::integer) AS n
              FROM jsonb_array_elements(o->'h') h GROUP BY 1) w;
        ok := true;
        full_ := '[]'::jsonb;
        FOR k IN SELECT DISTINCT (h->>0) || us || (o->>'day') FROM jsonb_array_elements(o->'h') h LOOP
            IF COALESCE((dd->k->>0)::integer, 0) <= 0 THEN
                ok := false;
                full_ := full_ || jsonb_build_array(jsonb_build_array(split_part(k, us, 1),
                                                                      COALESCE((dd->k->>1)::integer, 0)));
            END IF;
        END LOOP;
        FOR k, n IN SELECT w.key, w.value::integer FROM jsonb_each_text(lines) w LOOP
            IF c->k IS NULL OR (c->k->>0)::integer < n THEN
                ok := false;
            END IF;
        END LOOP;
        IF ok THEN
            FOR k, n IN SELECT w.key, w.value::integer FROM jsonb_each_text(lines) w LOOP
                x := c->k;
                c := jsonb_set(c, ARRAY[k], jsonb_build_array((x->>0)::integer - n, (x->>1)::integer - n,
                                                             x->2, x->3, x->4, (x->>5)::integer + n));
            END LOOP;
            FOR k IN SELECT DISTINCT (h->>0) || us || (o->>'day') FROM jsonb_array_elements(o->'h') h LOOP
                x := dd->k;
                dd := jsonb_set(dd, ARRAY[k], jsonb_build_array((x->>0)::integer - 1, (x->>1)::integer + 1,
                                                               (x->>2)::integer + 1));
            END LOOP;
            ok_ids := ok_ids || (o->>'id');
        ELSE
            bad_ids := bad_ids || (o->>'id');
        END IF;
        r_ord := r_ord || i; r_kind := r_kind || CASE WHEN ok THEN 'reserved' ELSE 'refused' END;
        r_keys := r_keys || (SELECT COALESCE(jsonb_agg(w.key), '[]'::jsonb) FROM jsonb_each(lines) w);
        r_full := r_full || full_;
    END LOOP;

    -- 5. Write what the batch took: one statement per table.
    IF cardinality(ok_ids) > 0 THEN
        UPDATE stock kk SET reserved = kk.reserved + w.n, version = kk.version + 1
        FROM (SELECT split_part(e.key, us, 1) AS s, split_part(e.key, us, 2) AS q, e.value->>4 AS g,
                     (e.value->>5)::integer AS n
              FROM jsonb_each(c) e WHERE (e.value->>5)::integer > 0) w
        WHERE kk.region = ANY (regs) AND kk.region = w.g AND kk.store_id = w.s AND kk.sku = w.q;
        UPDATE store_days sd SET orders = sd.orders + w.n
        FROM (SELECT split_part(e.key, us, 1) AS s, split_part(e.key, us, 2)::bigint AS day,
                     (e.value->>2)::integer AS n
              FROM jsonb_each(dd) e WHERE (e.value->>2)::integer > 0) w
        WHERE sd.region = ANY (regs) AND sd.store_id = w.s AND sd.day = w.day;
        INSERT INTO reservations (region, order_id, state, day, expires_at, stores, skus, qtys)
        SELECT e->>'g', e->>'id', 1, (e->>'day')::bigint, (e->>'exp')::bigint,
               ARRAY(SELECT h->>0 FROM jsonb_array_elements(e->'h') h),
               ARRAY(SELECT h->>1 FROM jsonb_array_elements(e->'h') h),
               ARRAY(SELECT (h->>2)::integer FROM jsonb_array_elements(e->'h') h)
        FROM jsonb_array_elements(batch) e
        WHERE e->>'id' = ANY (ok_ids) AND jsonb_array_length(e->'h') > 0;
        INSERT INTO stock_changes (region, at, items)
        SELECT e.value->>4, clock_timestamp(),
               string_agg(omniroute_item(split_part(e.key, us, 1), split_part(e.key, us, 2),
                                         (e.value->>1)::bigint, (e.value->>2)::integer,
                                         (e.value->>3)::bigint + 1), chr(30))
        FROM jsonb_each(c) e WHERE (e.value->>5)::integer > 0 GROUP BY 1;
    END IF;
    IF cardinality(bad_ids) > 0 THEN
        DELETE FROM orders y WHERE y.region = ANY (regs) AND y.order_id = ANY (bad_ids);
    END IF;

    -- 6. The answers: the cells as they are now; answered before: their stored answer.
    RETURN QUERY
        SELECT r.o, r.kind,
               CASE WHEN r.kind = 'existing' THEN NULL ELSE (
                   SELECT COALESCE(jsonb_agg(jsonb_build_array(
                              split_part(key.v, us, 1), split_part(key.v, us, 2), (c->key.v->>1)::bigint,
                              (c->key.v->>2)::integer,
                              (c->key.v->>3)::bigint + CASE WHEN (c->key.v->>5)::integer > 0 THEN 1 ELSE 0 END)),
                              '[]'::jsonb)
                   FROM jsonb_array_elements_text(r.keys) key(v) WHERE c ? key.v) END,
               CASE WHEN r.kind = 'existing' THEN NULL ELSE r.fs END,
               NULL::text, NULL::text
        FROM unnest(r_ord, r_kind, r_keys, r_full) r(o, kind, keys, fs)
        WHERE r.kind <> 'existing';
    FOR i IN SELECT r.o FROM unnest(r_ord, r_kind) r(o, kind) WHERE r.kind = 'existing' LOOP
        o := batch -> i;
        RETURN QUERY SELECT i, 'existing'::text, NULL::jsonb, NULL::jsonb, y.request, y.response
            FROM orders y WHERE y.region = o->>'g' AND y.order_id = o->>'id';
    END LOOP;
END $$;

-- Ends the held reservation of order p_order (of region p_region) as p_target (2 committed,
-- 3 released, 4 expired); as omniroute_finish (V6) otherwise: the state after the call.
CREATE OR REPLACE FUNCTION omniroute_finish_r(p_region text, p_order text, p_target smallint,
                                              OUT state smallint, OUT expires_at bigint, OUT changed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r reservations%ROWTYPE;
    regs jsonb;
    g text;
    items text[];
    l_s text[];
    l_q text[];
    l_n integer[];
    l_g text[];
BEGIN
    SELECT * INTO r FROM reservations x WHERE x.region = p_region AND x.order_id = p_order FOR UPDATE;
    IF NOT FOUND THEN
        state := 0; changed := false; RETURN;
    END IF;
    expires_at := r.expires_at;
    IF r.state <> 1 THEN
        state := r.state; changed := false; RETURN;
    END IF;
    SELECT COALESCE(jsonb_object_agg(st.store_id, st.region), '{}'::jsonb) INTO regs
    FROM stores st WHERE st.store_id = ANY (r.stores);
    SELECT array_agg(w.s ORDER BY w.s, w.q), array_agg(w.q ORDER BY w.s, w.q),
           array_agg(w.n ORDER BY w.s, w.q), array_agg(COALESCE(regs->>w.s, '') ORDER BY w.s, w.q)
    INTO l_s, l_q, l_n, l_g
    FROM (SELECT u.s, u.q, sum(u.n)::integer AS n FROM unnest(r.stores, r.skus, r.qtys) u(s, q, n)
          GROUP BY 1, 2) w;
    FOR g IN SELECT DISTINCT x FROM unnest(l_g) x ORDER BY 1 LOOP
        PERFORM 1 FROM stock k
        WHERE k.region = g AND (k.store_id, k.sku) IN (
            SELECT u.s, u.q FROM unnest(l_s, l_q, l_g) u(s, q, rg) WHERE u.rg = g)
        ORDER BY k.store_id, k.sku FOR UPDATE;
    END LOOP;
    FOR g IN SELECT DISTINCT x FROM unnest(l_g) x ORDER BY 1 LOOP
        WITH upd AS (
            UPDATE stock k SET reserved = k.reserved - u.n,
                               on_hand = GREATEST(k.on_hand - CASE WHEN p_target = 2 THEN u.n ELSE 0 END, 0),
                               version = k.version + 1
            FROM unnest(l_s, l_q, l_n, l_g) u(s, q, n, rg)
            WHERE k.region = g AND u.rg = g AND k.store_id = u.s AND k.sku = u.q
            RETURNING k.store_id, k.sku, k.on_hand - k.reserved AS free, k.safety_stock, k.version)
        SELECT array_agg(omniroute_item(upd.store_id, upd.sku, upd.free, upd.safety_stock, upd.version))
        INTO items FROM upd;
        PERFORM omniroute_log_changes(g, items);
        IF p_target <> 2 THEN
            UPDATE store_days d SET orders = d.orders - 1
            WHERE d.region = g AND d.day = r.day AND d.orders > 0
              AND d.store_id IN (SELECT DISTINCT u.s FROM unnest(l_s, l_g) u(s, rg) WHERE u.rg = g);
        END IF;
    END LOOP;
    UPDATE reservations x SET state = p_target WHERE x.region = p_region AND x.order_id = p_order;
    state := p_target; changed := true;
END $$;

-- Expires up to p_limit held reservations of region p_region due at p_now; returns how many.
CREATE OR REPLACE FUNCTION omniroute_expire_r(p_region text, p_now bigint, p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
    id text;
BEGIN
    SELECT array_agg(due.order_id ORDER BY due.order_id) INTO ids FROM (
        SELECT x.order_id FROM reservations x
        WHERE x.region = p_region AND x.state = 1 AND x.expires_at <= p_now
        ORDER BY x.expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED) due;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    FOREACH id IN ARRAY ids LOOP
        PERFORM omniroute_finish_r(p_region, id, 4::smallint);
    END LOOP;
    RETURN cardinality(ids);
END $$;

-- Applies a stock feed, all rows or none: as omniroute_feed (V7), each row in its store's region.
CREATE OR REPLACE FUNCTION omniroute_feed_r(rows_ jsonb)
RETURNS TABLE (ord integer, on_hand integer, reserved integer, safety_stock integer, version bigint,
               new_row boolean)
LANGUAGE plpgsql AS $$
DECLARE
    regs jsonb;
    r jsonb;
    g text;
    i integer;
    existed boolean;
    res record;
    delta bigint;
    f_s text[];
    f_q text[];
    f_g text[];
    log_g text[] := '{}';
    log_i text[] := '{}';
BEGIN
    SELECT array_agg(e->>0), array_agg(e->>1) INTO f_s, f_q FROM jsonb_array_elements(rows_) e;
    SELECT COALESCE(jsonb_object_agg(st.store_id, st.region), '{}'::jsonb) INTO regs
    FROM stores st WHERE st.store_id = ANY (f_s);
    SELECT array_agg(COALESCE(regs->>s, '')) INTO f_g FROM unnest(f_s) s;
    FOR g IN SELECT DISTINCT x FROM unnest(f_g) x ORDER BY 1 LOOP
        PERFORM 1 FROM stock k
        WHERE k.region = g AND (k.store_id, k.sku) IN (
            SELECT u.s, u.q FROM unnest(f_s, f_q, f_g) u(s, q, rg) WHERE u.rg = g)
        ORDER BY k.store_id, k.sku FOR UPDATE;
    END LOOP;
    FOR i IN 0 .. jsonb_array_length(rows_) - 1 LOOP
        r := rows_ -> i;
        g := f_g[i + 1];
        SELECT EXISTS (SELECT 1 FROM stock k WHERE k.region = g AND k.store_id = r->>0 AND k.sku = r->>1)
        INTO existed;
        IF r->2 <> 'null'::jsonb THEN
            INSERT INTO stock AS k (region, store_id, sku, on_hand, safety_stock)
            VALUES (g, r->>0, r->>1, (r->>2)::integer, COALESCE((r->>4)::integer, 0))
            ON CONFLICT (region, store_id, sku) DO UPDATE
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
                    WHERE k.region = g AND k.store_id = r->>0 AND k.sku = r->>1) > 2147483647) THEN
                RAISE EXCEPTION 'on_hand would exceed 2147483647' USING ERRCODE = 'OR002', DETAIL = i::text;
            END IF;
            INSERT INTO stock AS k (region, store_id, sku, on_hand)
            VALUES (g, r->>0, r->>1, GREATEST(delta, 0)::integer)
            ON CONFLICT (region, store_id, sku) DO UPDATE
            SET on_hand = (k.on_hand + delta)::integer, version = k.version + 1
            WHERE k.on_hand + delta >= 0
            RETURNING k.on_hand, k.reserved, k.safety_stock, k.version INTO res;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'on_hand would go below zero' USING ERRCODE = 'OR001', DETAIL = i::text;
            END IF;
        END IF;
        log_g := log_g || g;
        log_i := log_i || omniroute_item(r->>0, r->>1, res.on_hand - res.reserved, res.safety_stock, res.version);
        ord := i; on_hand := res.on_hand; reserved := res.reserved; safety_stock := res.safety_stock;
        version := res.version; new_row := NOT existed;
        RETURN NEXT;
    END LOOP;
    FOR g IN SELECT DISTINCT x FROM unnest(log_g) x ORDER BY 1 LOOP
        PERFORM omniroute_log_changes(g, ARRAY(SELECT u.i FROM unnest(log_g, log_i) u(rg, i) WHERE u.rg = g));
    END LOOP;
END $$;

-- Calls that name a region run on the worker that holds it.
SELECT create_distributed_function('omniroute_reserve_s(text, jsonb, text[], text[])', '$1',
                                   colocate_with := 'stock');
SELECT create_distributed_function('omniroute_reserve_r(text, jsonb, text[], text[])', '$1',
                                   colocate_with := 'stock');
SELECT create_distributed_function('omniroute_finish_r(text, text, smallint)', '$1',
                                   colocate_with := 'stock');
SELECT create_distributed_function('omniroute_expire_r(text, bigint, integer)', '$1',
                                   colocate_with := 'stock');
