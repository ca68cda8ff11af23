-- The chat outbox: jobs derived from approval events (ask the approvers, announce the
-- decision), written by a feed consumer in the transaction that moves its checkpoint, and
-- executed by a worker that claims them with a lease (no transaction open across a call to
-- a chat platform).
CREATE TABLE chat_jobs
(
    id           uuid PRIMARY KEY,
    kind         varchar(40) NOT NULL,
    request_id   uuid        NOT NULL,
    payload      jsonb       NOT NULL,
    run_at       timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    locked_until timestamptz,
    done_at      timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_chat_jobs_due ON chat_jobs (run_at) WHERE done_at IS NULL;

-- Every approval message posted, so a decision can update each copy in place.
CREATE TABLE chat_messages
(
    platform        varchar(20)  NOT NULL,
    channel         varchar(100) NOT NULL,
    ts              varchar(50)  NOT NULL,
    request_id      uuid         NOT NULL,
    recipient_email varchar(255) NOT NULL,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, channel, ts)
);

CREATE INDEX idx_chat_messages_request ON chat_messages (request_id);

-- The outbox starts at the end of the feed: approvals decided before it existed are not
-- announced again.
INSERT INTO projector_checkpoints (name, last_tx_id, last_global_seq)
SELECT 'chat_outbox', coalesce(max_tx, '0'::xid8), coalesce(max_seq, 0)
  FROM (SELECT tx_id AS max_tx, global_seq AS max_seq FROM events
         ORDER BY tx_id DESC, global_seq DESC LIMIT 1) last
 RIGHT JOIN (SELECT 1) one ON true;
