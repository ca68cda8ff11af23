-- Streams a feed consumer could not apply: the first event that failed (its position, so a
-- retry starts there), why, how often, and since when. The stream's later events wait;
-- every other aggregate's events keep flowing. `reported_at` says when the admins were told.
CREATE TABLE parked_streams
(
    consumer         varchar(50)  NOT NULL,
    aggregate_type   text         NOT NULL,
    aggregate_id     text         NOT NULL,
    first_tx_id      xid8         NOT NULL,
    first_global_seq bigint       NOT NULL,
    event_type       text         NOT NULL,
    sequence         bigint       NOT NULL,
    error            text         NOT NULL,
    attempts         integer      NOT NULL DEFAULT 1,
    first_failed_at  timestamptz  NOT NULL DEFAULT now(),
    last_failed_at   timestamptz  NOT NULL DEFAULT now(),
    reported_at      timestamptz,
    PRIMARY KEY (consumer, aggregate_type, aggregate_id)
);
