-- notif's tables on a PostgreSQL-wire database (PostgreSQL >= 13, CockroachDB, YugabyteDB).
-- Times are unix milliseconds (BIGINT) on the database's time base; each record column holds
-- the same versioned record the sled store writes, and the other columns are what queries
-- filter, order and lock by.

-- One row per feed (app, user). A feed write updates it first: its row lock orders the
-- feed's writers, and `last_seq` hands out the feed's change numbers.
CREATE TABLE notif_feeds (
    app      TEXT   NOT NULL,
    usr      TEXT   NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    unread   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app, usr)
);

-- The latest version of every notification, tombstones included; `change_seq` is its entry
-- in the feed's change log.
CREATE TABLE notif_notifications (
    app        TEXT   NOT NULL,
    usr        TEXT   NOT NULL,
    id         UUID   NOT NULL,
    change_seq BIGINT NOT NULL,
    group_name TEXT,
    expiration BIGINT NOT NULL,
    record     BYTEA  NOT NULL,
    PRIMARY KEY (app, usr, id)
);
CREATE INDEX notif_notifications_changes ON notif_notifications (app, usr, change_seq);
CREATE INDEX notif_notifications_groups ON notif_notifications (app, usr, group_name);
CREATE INDEX notif_notifications_expiry ON notif_notifications (expiration);

-- appNotificationId -> the notification that holds it now.
CREATE TABLE notif_app_ids (
    app                 TEXT NOT NULL,
    usr                 TEXT NOT NULL,
    app_notification_id TEXT NOT NULL,
    id                  UUID NOT NULL,
    PRIMARY KEY (app, usr, app_notification_id)
);

CREATE TABLE notif_subscriptions (
    id         UUID   PRIMARY KEY,
    app        TEXT   NOT NULL,
    usr        TEXT   NOT NULL,
    channel    TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    record     BYTEA  NOT NULL,
    UNIQUE (app, channel)
);
CREATE INDEX notif_subscriptions_feed ON notif_subscriptions (app, usr);
CREATE INDEX notif_subscriptions_expiry ON notif_subscriptions (expires_at);

-- Delivery jobs, one per (notification, endpoint): the coalescing key. `due` is when the job
-- may be leased; a leased job is due again when its lease ends, so a dead node's jobs come
-- back by themselves.
CREATE TABLE notif_jobs (
    notification UUID   NOT NULL,
    subscription UUID   NOT NULL,
    app          TEXT   NOT NULL,
    usr          TEXT   NOT NULL,
    due          BIGINT NOT NULL,
    record       BYTEA  NOT NULL,
    PRIMARY KEY (notification, subscription)
);
CREATE INDEX notif_jobs_due ON notif_jobs (due);

CREATE TABLE notif_delivery_status (
    notification UUID  NOT NULL,
    subscription UUID  NOT NULL,
    record       BYTEA NOT NULL,
    PRIMARY KEY (notification, subscription)
);
