-- 004_last: last activity (XEP-0012).
-- One row per account: when its last session ended and the status text of
-- the unavailable presence it sent last (NULL if none). Written by the sm's
-- mod_last at logout; read to answer jabber:iq:last queries about an
-- account that is offline.
CREATE TABLE last_activity (
    domain              text NOT NULL,
    username            text NOT NULL,
    logout_at           timestamptz NOT NULL DEFAULT now(),
    status              text,
    PRIMARY KEY (domain, username),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);
