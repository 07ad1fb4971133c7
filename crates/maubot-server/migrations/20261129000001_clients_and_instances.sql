-- maubot 0.6's tables with its columns, so that maubot's data can be carried over. IF NOT EXISTS
-- lets a database created by maubot itself be adopted as it is.
CREATE TABLE IF NOT EXISTS client (
    id           TEXT    PRIMARY KEY,
    homeserver   TEXT    NOT NULL,
    access_token TEXT    NOT NULL,
    device_id    TEXT    NOT NULL,
    enabled      BOOLEAN NOT NULL,
    next_batch   TEXT    NOT NULL,
    filter_id    TEXT    NOT NULL,
    sync         BOOLEAN NOT NULL,
    autojoin     BOOLEAN NOT NULL,
    online       BOOLEAN NOT NULL,
    displayname  TEXT    NOT NULL,
    avatar_url   TEXT    NOT NULL
);

CREATE TABLE IF NOT EXISTS instance (
    id              TEXT    PRIMARY KEY,
    type            TEXT    NOT NULL,
    enabled         BOOLEAN NOT NULL,
    primary_user    TEXT    NOT NULL,
    config          TEXT    NOT NULL,
    database_engine TEXT,
    FOREIGN KEY (primary_user) REFERENCES client(id) ON DELETE RESTRICT ON UPDATE CASCADE
);
