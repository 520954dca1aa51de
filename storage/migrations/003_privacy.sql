-- 003_privacy: privacy lists (XEP-0016) and the blocking command (XEP-0191),
-- which is a view on the default list (XEP-0191 §5), so both share these tables.
-- Applied by storage_migrate_sync in one transaction (no BEGIN/COMMIT here).

CREATE TABLE privacy_lists (
    domain              text NOT NULL,
    username            text NOT NULL,
    name                text NOT NULL,
    PRIMARY KEY (domain, username, name),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);

-- The items of a list; a list is replaced as a whole (never a delta).
CREATE TABLE privacy_items (
    domain              text NOT NULL,
    username            text NOT NULL,
    list                text NOT NULL,
    ord                 bigint NOT NULL CHECK (ord >= 0),
    type                text CHECK (type IN ('jid', 'group', 'subscription')),  -- NULL: fall-through
    value               text,
    action              text NOT NULL CHECK (action IN ('allow', 'deny')),
    -- what the item applies to: 1 message, 2 iq, 4 presence-in, 8 presence-out; 0 everything
    kinds               smallint NOT NULL DEFAULT 0 CHECK (kinds BETWEEN 0 AND 15),
    PRIMARY KEY (domain, username, list, ord),
    CHECK ((type IS NULL) = (value IS NULL)),
    FOREIGN KEY (domain, username, list) REFERENCES privacy_lists (domain, username, name) ON DELETE CASCADE
);

-- The user's default list, if any.
CREATE TABLE privacy_defaults (
    domain              text NOT NULL,
    username            text NOT NULL,
    list                text NOT NULL,
    PRIMARY KEY (domain, username),
    FOREIGN KEY (domain, username, list) REFERENCES privacy_lists (domain, username, name) ON DELETE CASCADE
);

-- Create or replace a list with its items (parallel arrays, '' for the NULL
-- type and value of a fall-through item), and make it the default when
-- p_make_default, in one transaction. The owner's account row is locked
-- first, so that changes of one user's lists are serialized.
-- Returns 0, or -2 when there is no such user.
CREATE FUNCTION switchboard_privacy_put(p_domain text, p_username text, p_name text, p_make_default boolean,
                                        p_ords bigint[], p_types text[], p_values text[], p_actions text[],
                                        p_kinds smallint[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE domain = p_domain AND username = p_username FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN -2;
    END IF;
    INSERT INTO privacy_lists (domain, username, name) VALUES (p_domain, p_username, p_name)
    ON CONFLICT DO NOTHING;
    DELETE FROM privacy_items WHERE domain = p_domain AND username = p_username AND list = p_name;
    INSERT INTO privacy_items (domain, username, list, ord, type, value, action, kinds)
    SELECT p_domain, p_username, p_name, x.ord, NULLIF(x.type, ''), NULLIF(x.value, ''), x.action, x.kinds
      FROM unnest(p_ords, p_types, p_values, p_actions, p_kinds) AS x(ord, type, value, action, kinds);
    IF p_make_default THEN
        INSERT INTO privacy_defaults (domain, username, list) VALUES (p_domain, p_username, p_name)
        ON CONFLICT (domain, username) DO UPDATE SET list = EXCLUDED.list;
    END IF;
    RETURN 0;
END
$$;
