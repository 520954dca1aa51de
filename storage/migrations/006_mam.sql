-- 006_mam: the message archive (XEP-0313) and its preferences.
-- One archive per account: the one-to-one messages the user sent and
-- received. Pages are read in (stamp, id) order: the indexes below make a
-- page query an index range scan however large the archive is.

CREATE TABLE mam_messages (
    id                  bigserial PRIMARY KEY,
    domain              text NOT NULL,
    username            text NOT NULL,
    stanza_id           text NOT NULL,          -- the public id (XEP-0359 <stanza-id/>)
    with_jid            text NOT NULL,          -- bare JID of the other party, prepared
    with_resource       text NOT NULL DEFAULT '',  -- its resource ('' when none)
    direction           text NOT NULL CHECK (direction IN ('in', 'out')),
    stamp               timestamptz NOT NULL,   -- when the server archived it
    stanza              text NOT NULL,          -- the message (jabber:client)
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);
CREATE UNIQUE INDEX mam_messages_stanza_id ON mam_messages (domain, username, stanza_id);
CREATE INDEX mam_messages_owner ON mam_messages (domain, username, stamp, id);
CREATE INDEX mam_messages_with ON mam_messages (domain, username, with_jid, stamp, id);
-- retention by age across all accounts
CREATE INDEX mam_messages_stamp ON mam_messages (stamp);

-- Archiving preferences (XEP-0441, <prefs/> in urn:xmpp:mam:2). No row:
-- the server's default (modules/mam/default-mode).
CREATE TABLE mam_prefs (
    domain              text NOT NULL,
    username            text NOT NULL,
    default_mode        text NOT NULL CHECK (default_mode IN ('always', 'never', 'roster')),
    always_jids         text[] NOT NULL DEFAULT '{}',
    never_jids          text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (domain, username),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);

-- Archive one message unless the owner's preferences say no. The
-- preferences are read in the same transaction as the insert, so a change
-- of preferences applies to every message archived after it committed.
-- p_in_roster: the other party is in the owner's roster (for 'roster');
-- p_default: the mode when the owner has no preferences.
-- Returns the new row's id, or -1 when the preferences refuse it (no
-- account: foreign key violation).
CREATE FUNCTION switchboard_mam_store(p_domain text, p_username text, p_stanza_id text, p_with text,
                                      p_with_resource text, p_direction text, p_stamp timestamptz,
                                      p_stanza text, p_in_roster boolean, p_default text)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_mode text;
    v_always text[];
    v_never text[];
    v_full text;
    new_id bigint;
BEGIN
    SELECT default_mode, always_jids, never_jids INTO v_mode, v_always, v_never
      FROM mam_prefs WHERE domain = p_domain AND username = p_username;
    IF NOT FOUND THEN
        v_mode := p_default;
        v_always := '{}';
        v_never := '{}';
    END IF;
    v_full := CASE WHEN p_with_resource = '' THEN p_with ELSE p_with || '/' || p_with_resource END;
    IF p_with = ANY (v_never) OR v_full = ANY (v_never) THEN
        RETURN -1;
    END IF;
    IF NOT (p_with = ANY (v_always) OR v_full = ANY (v_always)) THEN
        IF v_mode = 'never' OR (v_mode = 'roster' AND NOT p_in_roster) THEN
            RETURN -1;
        END IF;
    END IF;
    INSERT INTO mam_messages (domain, username, stanza_id, with_jid, with_resource, direction, stamp, stanza)
    VALUES (p_domain, p_username, p_stanza_id, p_with, p_with_resource, p_direction, p_stamp, p_stanza)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
