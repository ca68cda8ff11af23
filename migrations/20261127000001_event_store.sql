-- Event store for cqrs-es / postgres-es 0.5.
--
-- postgres-es names its columns explicitly, so the columns it does not know about
-- (global_seq, tx_id, recorded_at) are filled by their defaults and stay invisible to it.
-- They exist for the durable projector: a consumer reads
--   WHERE (tx_id, global_seq) > checkpoint AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
-- because global_seq alone is not commit order (a transaction holding a lower number can
-- commit after a higher one has been read).

CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    global_seq     bigint GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz                  NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX idx_events_global_seq ON events (global_seq);
CREATE INDEX idx_events_feed ON events (tx_id, global_seq);
CREATE INDEX idx_events_event_type ON events (event_type);

-- One snapshot per aggregate; postgres-es updates it in place with an optimistic check on
-- current_snapshot.
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Events are facts: once written they are never changed or removed.
CREATE FUNCTION events_are_append_only()
RETURNS TRIGGER AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % on events is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Wakes consumers that LISTEN on 'events'. NOTIFY is delivered at commit and is not durable:
-- consumers also poll, so a lost notification only delays them.
CREATE FUNCTION events_notify()
RETURNS TRIGGER AS $$
BEGIN
    PERFORM pg_notify('events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_notify_after_insert
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
