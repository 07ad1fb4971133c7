-- The end-to-end encryption state of every bot (its Olm account, sessions, room keys, the devices
-- and identities it tracks), in the main database as maubot keeps it, so that a thousand bots
-- share one pool instead of holding a store of their own each. One row per object: `kind` says
-- what it is, `scope` and `name` which one (a room, a user, a sender key, then its ID), and
-- `value` is the object serialised and encrypted with a key derived from
-- `crypto_db_pickle_key`. `sender`, `sender_type` and `marked` repeat what queries filter on:
-- a room key's sender key and the kind of its sender data, whether it is backed up, whether a
-- secret request was sent.
CREATE TABLE IF NOT EXISTS bot_crypto (
    bot         TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    sender      TEXT    NOT NULL DEFAULT '',
    sender_type BIGINT  NOT NULL DEFAULT 0,
    marked      BOOLEAN NOT NULL DEFAULT FALSE,
    value       BYTEA   NOT NULL,
    PRIMARY KEY (bot, kind, scope, name)
);

-- The SDK's leased locks, per bot; what lets several processes share one bot's keys later.
CREATE TABLE IF NOT EXISTS bot_crypto_lease (
    bot        TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    holder     TEXT   NOT NULL,
    expiration BIGINT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (bot, name)
);
