-- 005_pep: personal eventing (XEP-0163) nodes and items of each account.
-- Applied by storage_migrate_sync in one transaction (no BEGIN/COMMIT here).
-- Keyed by (domain, username) with ON DELETE CASCADE like 001.

CREATE TABLE pep_nodes (
    domain              text NOT NULL,
    username            text NOT NULL,
    node                text NOT NULL,
    -- XEP-0060 pubsub#access_model (the subset PEP servers implement)
    access_model        text NOT NULL DEFAULT 'presence'
                        CHECK (access_model IN ('open', 'presence', 'whitelist')),
    max_items           integer NOT NULL DEFAULT 1 CHECK (max_items >= 1),
    persist_items       boolean NOT NULL DEFAULT true,
    -- bare JIDs allowed by the whitelist access model (affiliation member)
    whitelist           text[] NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, username, node),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);

CREATE SEQUENCE pep_item_seq;

CREATE TABLE pep_items (
    domain              text NOT NULL,
    username            text NOT NULL,
    node                text NOT NULL,
    item_id             text NOT NULL,
    payload             text NOT NULL,          -- the item's payload element, serialized
    seq                 bigint NOT NULL DEFAULT nextval('pep_item_seq'),  -- publication order
    published_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, username, node, item_id),
    FOREIGN KEY (domain, username, node) REFERENCES pep_nodes (domain, username, node) ON DELETE CASCADE
);
CREATE INDEX pep_items_order ON pep_items (domain, username, node, seq);

-- Publish one item: create the node with the given configuration when it
-- does not exist (auto-create, unless the user already has p_max_nodes
-- nodes), then store the item (a new publication of an existing id
-- replaces it and makes it the newest) and keep only the node's
-- max_items newest items; a node with persist_items false keeps none.
-- The owner's account row is locked first so that concurrent publishes of
-- one user are serialized.
-- Returns 1 when the node was created, 0 when it existed, -1 when the user
-- has too many nodes, -2 when there is no such user.
CREATE FUNCTION switchboard_pep_publish(p_domain text, p_username text, p_node text, p_item_id text,
                                        p_payload text, p_access text, p_max_items integer,
                                        p_persist boolean, p_max_nodes bigint)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    created integer := 0;
    cfg record;
BEGIN
    PERFORM 1 FROM accounts WHERE domain = p_domain AND username = p_username FOR UPDATE;
    IF NOT FOUND THEN
        RETURN -2;
    END IF;
    SELECT max_items, persist_items INTO cfg FROM pep_nodes
        WHERE domain = p_domain AND username = p_username AND node = p_node;
    IF NOT FOUND THEN
        IF (SELECT count(*) FROM pep_nodes WHERE domain = p_domain AND username = p_username) >= p_max_nodes THEN
            RETURN -1;
        END IF;
        INSERT INTO pep_nodes (domain, username, node, access_model, max_items, persist_items)
            VALUES (p_domain, p_username, p_node, p_access, p_max_items, p_persist);
        created := 1;
        cfg.max_items := p_max_items;
        cfg.persist_items := p_persist;
    END IF;
    IF NOT cfg.persist_items THEN
        DELETE FROM pep_items WHERE domain = p_domain AND username = p_username AND node = p_node;
        RETURN created;
    END IF;
    INSERT INTO pep_items (domain, username, node, item_id, payload)
        VALUES (p_domain, p_username, p_node, p_item_id, p_payload)
        ON CONFLICT (domain, username, node, item_id)
        DO UPDATE SET payload = EXCLUDED.payload, seq = nextval('pep_item_seq'), published_at = now();
    DELETE FROM pep_items WHERE domain = p_domain AND username = p_username AND node = p_node
        AND seq NOT IN (SELECT seq FROM pep_items
                        WHERE domain = p_domain AND username = p_username AND node = p_node
                        ORDER BY seq DESC LIMIT cfg.max_items);
    RETURN created;
END;
$$;
