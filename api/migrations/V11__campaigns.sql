-- Coupon campaigns (POST /v1/campaigns): one row per campaign id with its record as JSON (brand,
-- discount, windows, budgets, stacking, status, the resolved store list, and `version`, which
-- every change raises by one: replicas change a campaign only from the version they read).
CREATE TABLE campaigns (
    id bigint PRIMARY KEY,
    brand text NOT NULL,
    record jsonb NOT NULL
);

-- Customers' captured coupons: one per customer and campaign (a capture is idempotent).
CREATE TABLE wallet_entries (
    customer_id text NOT NULL,
    campaign bigint NOT NULL,
    store_number integer NOT NULL,
    serial integer NOT NULL,
    entry jsonb NOT NULL,
    PRIMARY KEY (customer_id, campaign)
);
CREATE INDEX wallet_entries_by_campaign ON wallet_entries (campaign, store_number);

-- Coupons issued against a capped budget: (campaign, -1, -1) for the campaign's cap,
-- (campaign, store, -1) for a store's, (campaign, store, serial) for a poster's. Only capped
-- budgets have rows, so a campaign without caps has no row every capture must lock.
CREATE TABLE coupon_issues (
    campaign bigint NOT NULL,
    store_number integer NOT NULL,
    serial integer NOT NULL,
    issued bigint NOT NULL,
    PRIMARY KEY (campaign, store_number, serial)
);

-- One capture, atomically: the wallet entry if the customer has none for the campaign, and one
-- coupon from every capped budget; a spent budget undoes the whole capture. Outcomes: 'new',
-- 'already' (with the entry the customer holds), 'over_budget'.
CREATE FUNCTION omniroute_capture(
    p_customer text, p_campaign bigint, p_store integer, p_serial integer, p_entry jsonb,
    p_cap_total bigint, p_cap_store bigint, p_cap_poster bigint
) RETURNS TABLE (outcome text, entry jsonb) LANGUAGE plpgsql AS $$
DECLARE
    held jsonb;
BEGIN
    BEGIN
        INSERT INTO wallet_entries (customer_id, campaign, store_number, serial, entry)
        VALUES (p_customer, p_campaign, p_store, p_serial, p_entry)
        ON CONFLICT (customer_id, campaign) DO NOTHING;
        IF NOT FOUND THEN
            SELECT w.entry INTO held FROM wallet_entries w
            WHERE w.customer_id = p_customer AND w.campaign = p_campaign;
            RETURN QUERY SELECT 'already'::text, held;
            RETURN;
        END IF;
        IF p_cap_total IS NOT NULL THEN
            INSERT INTO coupon_issues AS c VALUES (p_campaign, -1, -1, 1)
            ON CONFLICT (campaign, store_number, serial) DO UPDATE SET issued = c.issued + 1
            WHERE c.issued < p_cap_total;
            IF NOT FOUND THEN RAISE EXCEPTION 'over_budget'; END IF;
        END IF;
        IF p_cap_store IS NOT NULL THEN
            INSERT INTO coupon_issues AS c VALUES (p_campaign, p_store, -1, 1)
            ON CONFLICT (campaign, store_number, serial) DO UPDATE SET issued = c.issued + 1
            WHERE c.issued < p_cap_store;
            IF NOT FOUND THEN RAISE EXCEPTION 'over_budget'; END IF;
        END IF;
        IF p_cap_poster IS NOT NULL THEN
            INSERT INTO coupon_issues AS c VALUES (p_campaign, p_store, p_serial, 1)
            ON CONFLICT (campaign, store_number, serial) DO UPDATE SET issued = c.issued + 1
            WHERE c.issued < p_cap_poster;
            IF NOT FOUND THEN RAISE EXCEPTION 'over_budget'; END IF;
        END IF;
    EXCEPTION WHEN raise_exception THEN
        RETURN QUERY SELECT 'over_budget'::text, NULL::jsonb;
        RETURN;
    END;
    RETURN QUERY SELECT 'new'::text, p_entry;
END;
$$;
