-- Feeds and ships never fail with a database error on values the service accepts.
--
-- * omniroute_feed: a delta that would take on_hand past the largest value the column holds
--   (2,147,483,647) refuses the whole feed with SQLSTATE 'OR002' and the row's index as its
--   detail, as a delta below zero does with 'OR001' (before, integer overflow aborted the call as
--   a server error). Absolute values are bounded by the service before they reach the database.
-- * omniroute_finish: shipping a reservation whose cell was fed below what it holds
--   (oversubscribed) takes on_hand to zero, not below (before, the CHECK on on_hand aborted the
--   ship); the embedded store does the same.

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
            delta := (r->>3)::bigint;
            IF delta < 0 AND NOT existed THEN
                RAISE EXCEPTION 'delta below zero on a missing row' USING ERRCODE = 'OR001', DETAIL = i::text;
            END IF;
            IF delta > 2147483647 OR (existed AND (SELECT k.on_hand + delta FROM stock k
                    WHERE k.store_id = (r->>0)::integer AND k.sku = (r->>1)::integer) > 2147483647) THEN
                RAISE EXCEPTION 'on_hand would exceed 2147483647' USING ERRCODE = 'OR002', DETAIL = i::text;
            END IF;
            INSERT INTO stock AS k (store_id, sku, on_hand)
            VALUES ((r->>0)::integer, (r->>1)::integer, GREATEST(delta, 0)::integer)
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
    END IF;
    UPDATE reservations x SET state = p_target WHERE x.order_id = p_order;
    state := p_target; changed := true;
END $$;
