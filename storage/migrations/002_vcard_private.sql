-- 002_vcard_private: vCards (XEP-0054) with the fields the user directory
-- searches (XEP-0055) and the avatar hash (XEP-0153); private XML storage
-- (XEP-0049). Applied by storage_migrate_sync in one transaction.

-- One vCard per user: the whole <vCard xmlns='vcard-temp'/> as XML, plus
-- copies of the fields the directory searches and the SHA-1 (hex) of the
-- decoded PHOTO/BINVAL, both taken from the XML when it is stored.
CREATE TABLE vcards (
    domain              text NOT NULL,
    username            text NOT NULL,
    vcard               text NOT NULL,
    fn                  text,                   -- FN
    given               text,                   -- N/GIVEN
    family              text,                   -- N/FAMILY
    nickname            text,                   -- NICKNAME
    email               text,                   -- EMAIL/USERID
    photo_hash          text,                   -- hex SHA-1 of PHOTO/BINVAL, NULL without a photo
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, username),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);

-- Directory search is a case-insensitive prefix match within a domain:
--   lower(col) ~>=~ lower(p) AND lower(col) ~<~ lower(p) || chr(1114111)
-- which these indexes serve as a range scan, with generic plans as well.
CREATE INDEX vcards_given_search ON vcards (domain, lower(given) text_pattern_ops);
CREATE INDEX vcards_family_search ON vcards (domain, lower(family) text_pattern_ops);
CREATE INDEX vcards_nickname_search ON vcards (domain, lower(nickname) text_pattern_ops);
CREATE INDEX vcards_email_search ON vcards (domain, lower(email) text_pattern_ops);

-- Private XML storage: per user and namespace, the stored elements of that
-- namespace, serialized one after the other (a set may carry several).
CREATE TABLE private_storage (
    domain              text NOT NULL,
    username            text NOT NULL,
    namespace           text NOT NULL,
    xml                 text NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, username, namespace),
    FOREIGN KEY (domain, username) REFERENCES accounts (domain, username) ON DELETE CASCADE
);
