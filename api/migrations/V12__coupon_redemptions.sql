-- Coupons redeemed with orders (the route call's `coupons`), taken in the same transaction as the
-- order's stock.
--
-- Lock order, which every function here keeps so that none deadlocks with another: an existing
-- reservation row, then coupon counters (coupon_redeemed in key order, then coupon_customers in
-- key order), then stock rows. omniroute_reserve_redeem takes an order's coupons before its
-- stock; omniroute_finish and omniroute_expire lock the counters of the redemptions they end
-- before the stock they release.

-- One row per coupon an order redeemed: live while its reservation is held or shipped; `ended`
-- once it was cancelled or expired (the coupon went back to every budget and limit).
CREATE TABLE coupon_redemptions (
    order_id text NOT NULL,
    campaign bigint NOT NULL,
    customer_id text NOT NULL,
    store_number integer NOT NULL,
    serial integer NOT NULL,
    off_cents bigint NOT NULL,
    redeemed_at bigint NOT NULL,
    ended boolean NOT NULL DEFAULT false,
    PRIMARY KEY (order_id, campaign)
);
CREATE INDEX coupon_redemptions_by_campaign ON coupon_redemptions (campaign, store_number) WHERE NOT ended;

-- Live redemptions and the discount they gave: (campaign, -1, -1) of the campaign,
-- (campaign, store, -1) of a capture store, (campaign, store, serial) of a poster. They always
-- equal a count of the live coupon_redemptions rows.
CREATE TABLE coupon_redeemed (
    campaign bigint NOT NULL,
    store_number integer NOT NULL,
    serial integer NOT NULL,
    redeemed bigint NOT NULL,
    discount_cents bigint NOT NULL,
    PRIMARY KEY (campaign, store_number, serial)
);

-- Live redemptions per customer and campaign (the campaign's per-customer limit).
CREATE TABLE coupon_customers (
    customer_id text NOT NULL,
    campaign bigint NOT NULL,
    redeemed integer NOT NULL,
    PRIMARY KEY (customer_id, campaign)
);

-- Locks the counters of the coupons `items` name, in key order, creating missing rows.
-- items: [[campaign, store_number, serial, customer_id], ...]
CREATE FUNCTION omniroute_lock_coupons(items jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coupon_redeemed (campaign, store_number, serial, redeemed, discount_cents)
    SELECT DISTINCT k.c, k.s, k.p, 0, 0
    FROM jsonb_array_elements(items) x,
         LATERAL (VALUES ((x->>0)::bigint, -1, -1), ((x->>0)::bigint, (x->>1)::integer, -1),
                         ((x->>0)::bigint, (x->>1)::integer, (x->>2)::integer)) k(c, s, p)
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING;
    INSERT INTO coupon_customers (customer_id, campaign, redeemed)
    SELECT DISTINCT x->>3, (x->>0)::bigint, 0 FROM jsonb_array_elements(items) x ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM coupon_redeemed r
    WHERE (r.campaign, r.store_number, r.serial) IN (
        SELECT (x->>0)::bigint, -1, -1 FROM jsonb_array_elements(items) x
        UNION SELECT (x->>0)::bigint, (x->>1)::integer, -1 FROM jsonb_array_elements(items) x
        UNION SELECT (x->>0)::bigint, (x->>1)::integer, (x->>2)::integer FROM jsonb_array_elements(items) x)
    ORDER BY r.campaign, r.store_number, r.serial FOR UPDATE;
    PERFORM 1 FROM coupon_customers u
    WHERE (u.customer_id, u.campaign) IN (
        SELECT x->>3, (x->>0)::bigint FROM jsonb_array_elements(items) x)
    ORDER BY u.customer_id, u.campaign FOR UPDATE;
END $$;

-- The counters of the live redemptions of `orders`, locked (see omniroute_lock_coupons).
CREATE FUNCTION omniroute_lock_redemptions(orders text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    items jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_array(r.campaign, r.store_number, r.serial, r.customer_id)) INTO items
    FROM coupon_redemptions r WHERE r.order_id = ANY (orders) AND NOT r.ended;
    IF items IS NOT NULL THEN
        PERFORM omniroute_lock_coupons(items);
    END IF;
END $$;

-- Moves `n` (1 or -1) of one coupon through its counters (locked by the caller).
CREATE FUNCTION omniroute_count_coupon(p_campaign bigint, p_store integer, p_serial integer,
                                       p_customer text, p_off bigint, n integer)
RETURNS void LANGUAGE sql AS $$
    UPDATE coupon_redeemed r SET redeemed = r.redeemed + n, discount_cents = r.discount_cents + n * p_off
    WHERE (r.campaign, r.store_number, r.serial) IN
          ((p_campaign, -1, -1), (p_campaign, p_store, -1), (p_campaign, p_store, p_serial));
    UPDATE coupon_customers u SET redeemed = u.redeemed + n
    WHERE u.customer_id = p_customer AND u.campaign = p_campaign;
$$;

-- Gives back the coupons of an order whose reservation was cancelled or expired now.
CREATE FUNCTION omniroute_end_redemption(p_order text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN UPDATE coupon_redemptions x SET ended = true WHERE x.order_id = p_order AND NOT x.ended
             RETURNING x.campaign, x.store_number, x.serial, x.customer_id, x.off_cents LOOP
        PERFORM omniroute_count_coupon(r.campaign, r.store_number, r.serial, r.customer_id, r.off_cents, -1);
    END LOOP;
END $$;

-- Takes one order's coupons from every budget and limit, all or none (the counters locked by the
-- caller). c: {"cust": customer, "at": unix s, "k": [[campaign, store_number, serial, off_cents,
-- cap redeemed, cap discount_cents, cap per store, cap per poster, per customer], ...]}, caps
-- null when none. Returns null when taken, or [campaign, reason] of the coupon refused.
CREATE FUNCTION omniroute_take_coupons(p_order text, c jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k jsonb;
    cid bigint;
    off bigint;
    ok boolean;
    msg text;
    det text;
BEGIN
    IF EXISTS (SELECT 1 FROM orders y WHERE y.order_id = p_order) THEN
        RETURN jsonb_build_array(0, 'answered');
    END IF;
    BEGIN
        FOR k IN SELECT x FROM jsonb_array_elements(c->'k') x LOOP
            cid := (k->>0)::bigint;
            off := (k->>3)::bigint;
            SELECT (k->4 = 'null'::jsonb OR r.redeemed < (k->>4)::bigint)
               AND (k->5 = 'null'::jsonb OR r.discount_cents + off <= (k->>5)::bigint) INTO ok
            FROM coupon_redeemed r WHERE (r.campaign, r.store_number, r.serial) = (cid, -1, -1);
            IF NOT ok THEN RAISE EXCEPTION 'budget_spent' USING DETAIL = cid::text; END IF;
            SELECT k->6 = 'null'::jsonb OR r.redeemed < (k->>6)::bigint INTO ok
            FROM coupon_redeemed r WHERE (r.campaign, r.store_number, r.serial) = (cid, (k->>1)::integer, -1);
            IF NOT ok THEN RAISE EXCEPTION 'budget_spent' USING DETAIL = cid::text; END IF;
            SELECT k->7 = 'null'::jsonb OR r.redeemed < (k->>7)::bigint INTO ok
            FROM coupon_redeemed r
            WHERE (r.campaign, r.store_number, r.serial) = (cid, (k->>1)::integer, (k->>2)::integer);
            IF NOT ok THEN RAISE EXCEPTION 'budget_spent' USING DETAIL = cid::text; END IF;
            SELECT u.redeemed < (k->>8)::integer INTO ok
            FROM coupon_customers u WHERE u.customer_id = c->>'cust' AND u.campaign = cid;
            IF NOT ok THEN RAISE EXCEPTION 'customer_limit_reached' USING DETAIL = cid::text; END IF;
            INSERT INTO coupon_redemptions (order_id, campaign, customer_id, store_number, serial, off_cents,
                                            redeemed_at)
            VALUES (p_order, cid, c->>'cust', (k->>1)::integer, (k->>2)::integer, off, (c->>'at')::bigint)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN RAISE EXCEPTION 'answered' USING DETAIL = cid::text; END IF;
            PERFORM omniroute_count_coupon(cid, (k->>1)::integer, (k->>2)::integer, c->>'cust', off, 1);
        END LOOP;
    EXCEPTION WHEN raise_exception THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
        RETURN jsonb_build_array(det::bigint, msg);
    END;
    RETURN NULL;
END $$;

-- omniroute_reserve for a batch of which some orders redeem coupons (member "r" of an order,
-- as omniroute_take_coupons takes it): each order's coupons are taken first, all or none; an
-- order a budget refuses is left out with outcome 'coupon_refused' and [campaign, reason] in
-- `cells`; the rest are reserved, and the coupons of an order not reserved after all (refused
-- stock, answered before) are given back. One transaction: coupons and stock hold together.
CREATE FUNCTION omniroute_reserve_redeem(batch jsonb, reqs text[], resps text[])
RETURNS TABLE (ord integer, outcome text, cells jsonb, full_stores jsonb, request text, response text)
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    i bigint;
    refused jsonb;
    items jsonb;
    kept integer[] := '{}';
    k_batch jsonb := '[]'::jsonb;
    k_reqs text[] := '{}';
    k_resps text[] := '{}';
    taken text[] := '{}';
    r record;
BEGIN
    SELECT jsonb_agg(jsonb_build_array(k->0, k->1, k->2, e.v->'r'->>'cust')) INTO items
    FROM jsonb_array_elements(batch) e(v), jsonb_array_elements(e.v->'r'->'k') k
    WHERE e.v ? 'r';
    IF items IS NOT NULL THEN
        PERFORM omniroute_lock_coupons(items);
    END IF;
    FOR o, i IN SELECT e.v, e.n FROM jsonb_array_elements(batch) WITH ORDINALITY e(v, n) LOOP
        IF o ? 'r' THEN
            refused := omniroute_take_coupons(o->>'id', o->'r');
            IF refused IS NULL THEN
                taken := taken || (o->>'id');
            ELSIF refused->>1 <> 'answered' THEN
                ord := i - 1; outcome := 'coupon_refused'; cells := refused;
                full_stores := NULL; request := NULL; response := NULL;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        kept := kept || (i - 1)::integer;
        k_batch := k_batch || jsonb_build_array(o - 'r');
        k_reqs := k_reqs || reqs[i];
        k_resps := k_resps || resps[i];
    END LOOP;
    IF jsonb_array_length(k_batch) = 0 THEN
        RETURN;
    END IF;
    FOR r IN SELECT * FROM omniroute_reserve(k_batch, k_reqs, k_resps) x LOOP
        IF r.outcome <> 'reserved' AND (k_batch->(r.ord)->>'id') = ANY (taken) THEN
            -- The rows this call inserted: the order's, of the campaigns it took.
            o := batch->(kept[r.ord + 1]);
            PERFORM omniroute_count_coupon(d.campaign, d.store_number, d.serial, d.customer_id, d.off_cents, -1)
            FROM coupon_redemptions d
            WHERE d.order_id = o->>'id' AND NOT d.ended
              AND d.campaign IN (SELECT (k->>0)::bigint FROM jsonb_array_elements(o->'r'->'k') k);
            DELETE FROM coupon_redemptions d
            WHERE d.order_id = o->>'id'
              AND d.campaign IN (SELECT (k->>0)::bigint FROM jsonb_array_elements(o->'r'->'k') k);
        END IF;
        ord := kept[r.ord + 1]; outcome := r.outcome; cells := r.cells; full_stores := r.full_stores;
        request := r.request; response := r.response;
        RETURN NEXT;
    END LOOP;
END $$;

-- omniroute_finish (V6) that gives back the coupons of a reservation it cancels or expires.
CREATE OR REPLACE FUNCTION omniroute_finish(p_order text, p_target smallint,
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
    IF p_target <> 2 THEN
        PERFORM omniroute_lock_redemptions(ARRAY[p_order]);
    END IF;
    PERFORM 1 FROM stock k
    WHERE (k.store_id, k.sku) IN (SELECT * FROM unnest(r.stores, r.skus))
    ORDER BY k.store_id, k.sku FOR UPDATE;
    UPDATE stock k SET reserved = k.reserved - w.qty,
                       on_hand = GREATEST(k.on_hand - CASE WHEN p_target = 2 THEN w.qty ELSE 0 END, 0),
                       version = k.version + 1
    FROM (SELECT s AS store_id, q AS sku, sum(n) AS qty FROM unnest(r.stores, r.skus, r.qtys) u(s, q, n)
          GROUP BY 1, 2) w
    WHERE k.store_id = w.store_id AND k.sku = w.sku;
    IF p_target <> 2 THEN
        UPDATE store_days d SET orders = d.orders - 1
        WHERE d.day = r.day AND d.store_id IN (SELECT DISTINCT unnest(r.stores)) AND d.orders > 0;
        PERFORM omniroute_end_redemption(p_order);
    END IF;
    UPDATE reservations x SET state = p_target WHERE x.order_id = p_order;
    state := p_target; changed := true;
END $$;

-- omniroute_expire (V1) that locks the coupon counters of what it expires before the stock.
CREATE OR REPLACE FUNCTION omniroute_expire(p_now bigint, p_limit integer) RETURNS integer
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
    PERFORM omniroute_lock_redemptions(ids);
    PERFORM 1 FROM stock k
    WHERE (k.store_id, k.sku) IN (
        SELECT u.s, u.q FROM reservations x, unnest(x.stores, x.skus) u(s, q) WHERE x.order_id = ANY (ids))
    ORDER BY k.store_id, k.sku FOR UPDATE;
    PERFORM omniroute_finish(id, 4::smallint) FROM unnest(ids) id;
    RETURN array_length(ids, 1);
END $$;
