-- 007_offline_counters: a per-user counter of stored offline messages, so
-- that storing one message no longer counts the user's whole queue.
--
-- offline_counters.stored is the number of rows the user has in
-- offline_messages (expired ones included while they are still there). It
-- is kept exact in the transaction that changes the rows:
--   * switchboard_offline_store adds 1 when it inserts (the one write path
--     of the server; it also holds the row lock that serializes one user's
--     stores, instead of the account row);
--   * every DELETE on offline_messages (delivered messages, expired ones,
--     an operator's DELETE) subtracts its rows through a statement trigger;
--     TRUNCATE zeroes every counter.
-- A store that finds the counter at the quota purges the user's expired
-- messages and recounts the rows before refusing, so expired messages never
-- take quota and a counter made wrong by rows inserted behind the server's
-- back is corrected there: a refusal is always decided on an exact count.
--
-- Lock order, for every path: the counter row first, then message rows
-- (switchboard_offline_delete below takes the counter before deleting).

CREATE TABLE offline_counters (
    domain              text NOT NULL,
    username            text NOT NULL,
    stored              bigint NOT NULL DEFAULT 0 CHECK (stored >= 0),
    PRIMARY KEY (domain, username),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);

INSERT INTO offline_counters (domain, username, stored)
SELECT domain, username, count(*) FROM offline_messages GROUP BY domain, username;

CREATE FUNCTION switchboard_offline_counted_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE offline_counters c SET stored = greatest(c.stored - d.n, 0)
      FROM (SELECT domain, username, count(*) AS n FROM gone GROUP BY domain, username) d
     WHERE c.domain = d.domain AND c.username = d.username;
    RETURN NULL;
END
$$;

CREATE TRIGGER offline_messages_counted_delete
    AFTER DELETE ON offline_messages
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION switchboard_offline_counted_delete();

CREATE FUNCTION switchboard_offline_counted_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE offline_counters SET stored = 0 WHERE stored <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER offline_messages_counted_truncate
    AFTER TRUNCATE ON offline_messages
    FOR EACH STATEMENT EXECUTE FUNCTION switchboard_offline_counted_truncate();

-- Same contract as in 001: the new id, -1 when the user already holds
-- p_quota unexpired messages, -2 when there is no such user.
CREATE OR REPLACE FUNCTION switchboard_offline_store(p_domain text, p_username text, p_stanza text,
                                                     p_expire_at timestamptz, p_quota bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
    new_id bigint;
BEGIN
    -- The common case: one row update that takes a place under the quota
    -- and locks the counter until the commit.
    UPDATE offline_counters SET stored = stored + 1
     WHERE domain = p_domain AND username = p_username AND stored < p_quota;
    IF NOT FOUND THEN
        SELECT stored INTO n FROM offline_counters
         WHERE domain = p_domain AND username = p_username FOR UPDATE;
        IF NOT FOUND THEN
            -- First message of this user since the counter exists.
            PERFORM 1 FROM accounts WHERE domain = p_domain AND username = p_username FOR KEY SHARE;
            IF NOT FOUND THEN
                RETURN -2;
            END IF;
            INSERT INTO offline_counters (domain, username, stored)
            VALUES (p_domain, p_username, 0) ON CONFLICT DO NOTHING;
            SELECT stored INTO n FROM offline_counters
             WHERE domain = p_domain AND username = p_username FOR UPDATE;
        END IF;
        IF n >= p_quota THEN
            -- At the quota: decide on the exact number of unexpired rows.
            DELETE FROM offline_messages
             WHERE domain = p_domain AND username = p_username AND expire_at <= now();
            SELECT count(*) INTO n FROM offline_messages
             WHERE domain = p_domain AND username = p_username;
            UPDATE offline_counters SET stored = n WHERE domain = p_domain AND username = p_username;
            IF n >= p_quota THEN
                RETURN -1;
            END IF;
        END IF;
        UPDATE offline_counters SET stored = stored + 1 WHERE domain = p_domain AND username = p_username;
    END IF;
    INSERT INTO offline_messages (domain, username, stanza, expire_at)
    VALUES (p_domain, p_username, p_stanza, p_expire_at)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- Delete a user's messages with id <= p_up_to and the expired ones, the
-- counter row locked first (see the lock order above). Returns the number
-- of rows deleted, or -1 when there is no such user.
CREATE FUNCTION switchboard_offline_delete(p_domain text, p_username text, p_up_to bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM 1 FROM offline_counters WHERE domain = p_domain AND username = p_username FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM 1 FROM accounts WHERE domain = p_domain AND username = p_username;
        IF NOT FOUND THEN
            RETURN -1;
        END IF;
    END IF;
    DELETE FROM offline_messages
     WHERE domain = p_domain AND username = p_username AND (id <= p_up_to OR expire_at <= now());
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
