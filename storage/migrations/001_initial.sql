-- 001_initial: accounts, rosters, offline messages.
-- Applied by storage_migrate_sync in one transaction (no BEGIN/COMMIT here).
-- Every table of a user's data is keyed by (domain, username) and references
-- accounts ON DELETE CASCADE, so deleting an account deletes everything.
-- domain is Nameprep'd, username Nodeprep'd (storage does not prepare them).

CREATE TABLE accounts (
    domain              text NOT NULL,
    username            text NOT NULL,
    -- SCRAM-SHA-1 secrets (RFC 5802)
    sha1_iterations     integer,
    sha1_salt           bytea,
    sha1_stored_key     bytea,
    sha1_server_key     bytea,
    -- SCRAM-SHA-256 secrets (RFC 7677)
    sha256_iterations   integer,
    sha256_salt         bytea,
    sha256_stored_key   bytea,
    sha256_server_key   bytea,
    -- only when the operator opted into plaintext storage (legacy digest auth)
    password            text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, username),
    CHECK ((sha1_iterations IS NULL) = (sha1_salt IS NULL)
           AND (sha1_salt IS NULL) = (sha1_stored_key IS NULL)
           AND (sha1_stored_key IS NULL) = (sha1_server_key IS NULL)),
    CHECK ((sha256_iterations IS NULL) = (sha256_salt IS NULL)
           AND (sha256_salt IS NULL) = (sha256_stored_key IS NULL)
           AND (sha256_stored_key IS NULL) = (sha256_server_key IS NULL)),
    CHECK (sha1_iterations > 0 OR sha256_iterations > 0)
);

CREATE TABLE roster_items (
    domain              text NOT NULL,
    username            text NOT NULL,
    contact             text NOT NULL,          -- bare JID, prepared
    name                text,
    subscription        text NOT NULL DEFAULT 'none'
                        CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out             boolean NOT NULL DEFAULT false,
    pending_in          boolean NOT NULL DEFAULT false,
    approved            boolean NOT NULL DEFAULT false,
    pending_in_stanza   text,
    groups              text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (domain, username, contact),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);

-- XEP-0237 roster version per user: bumped by every change of the roster.
CREATE TABLE roster_versions (
    domain              text NOT NULL,
    username            text NOT NULL,
    version             bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (domain, username),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);

CREATE TABLE offline_messages (
    id                  bigserial PRIMARY KEY,
    domain              text NOT NULL,
    username            text NOT NULL,
    stanza              text NOT NULL,
    stored_at           timestamptz NOT NULL DEFAULT now(),
    expire_at           timestamptz,            -- NULL: never
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);
CREATE INDEX offline_messages_owner ON offline_messages (domain, username, id);

-- Store one offline message unless the user already holds p_quota unexpired
-- ones. The owner's account row is locked first, so that concurrent stores
-- for one user are serialized and the count cannot race the insert; each
-- statement of this (volatile) function sees the rows committed before it.
-- Returns the new id, -1 when the quota is reached, -2 when there is no such user.
CREATE FUNCTION switchboard_offline_store(p_domain text, p_username text, p_stanza text,
                                          p_expire_at timestamptz, p_quota bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
    new_id bigint;
BEGIN
    PERFORM 1 FROM accounts WHERE domain = p_domain AND username = p_username FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN -2;
    END IF;
    SELECT count(*) INTO n FROM offline_messages
     WHERE domain = p_domain AND username = p_username
       AND (expire_at IS NULL OR expire_at > now());
    IF n >= p_quota THEN
        RETURN -1;
    END IF;
    INSERT INTO offline_messages (domain, username, stanza, expire_at)
    VALUES (p_domain, p_username, p_stanza, p_expire_at)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
