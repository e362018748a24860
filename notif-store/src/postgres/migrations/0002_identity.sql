-- The embedded identity provider's state, shared by every node: its signing keys (so a
-- token issued by one node verifies on all) and its refresh-token grants (so a refresh token
-- is spent once, whichever nodes it reaches).

CREATE TABLE notif_idp_keys (
    position BIGINT PRIMARY KEY,
    kid      TEXT   NOT NULL,
    pkcs8    BYTEA  NOT NULL
);

CREATE TABLE notif_idp_grants (
    token_hash TEXT    PRIMARY KEY,
    usr        TEXT    NOT NULL,
    client     TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    used       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX notif_idp_grants_expiry ON notif_idp_grants (expires_at);
