-- One job runtime: the issuance, mail, revocation and chat jobs, each kept in a table of its
-- own until now, become rows of one `jobs` table with a typed payload. Jobs sharing an
-- ordering key run in queue order (`seq`); a job given up stays visible as `failed` until
-- it is retried, and `reported_at` says when the admins were told.
CREATE TABLE jobs
(
    id           uuid PRIMARY KEY,
    kind         varchar(40)  NOT NULL,
    ordering_key varchar(200),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    payload      jsonb        NOT NULL,
    state        varchar(10)  NOT NULL DEFAULT 'queued',
    run_at       timestamptz  NOT NULL DEFAULT now(),
    attempts     integer      NOT NULL DEFAULT 0,
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz  NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    reported_at  timestamptz,
    CONSTRAINT job_state CHECK (state IN ('queued', 'done', 'failed'))
);

CREATE INDEX idx_jobs_due ON jobs (kind, run_at) WHERE state = 'queued';
CREATE INDEX idx_jobs_ordering ON jobs (ordering_key, seq)
    WHERE state = 'queued' AND ordering_key IS NOT NULL;
CREATE INDEX idx_jobs_unreported ON jobs (finished_at) WHERE state = 'failed' AND reported_at IS NULL;

-- The issuance saga's own durable progress: when a CSR went to the CA (committed before the
-- call) and the CA's request id (right after it). A job found submitting without an id was
-- interrupted where it is unknown whether the CA got the CSR; it goes to an operator.
CREATE TABLE issuance_submissions
(
    request_id    uuid PRIMARY KEY,
    submitting_at timestamptz,
    ca_request_id varchar(100),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Work queued by an earlier version carries over.
INSERT INTO jobs (id, kind, payload, state, run_at, attempts, last_error, created_at, finished_at, reported_at)
SELECT request_id, 'issuance', jsonb_build_object('request_id', request_id),
       CASE WHEN state = 'needs_operator' THEN 'failed' ELSE 'queued' END,
       run_at, attempts, last_error, created_at,
       CASE WHEN state = 'needs_operator' THEN done_at END,
       CASE WHEN state = 'needs_operator' THEN done_at END
  FROM issuance_jobs
 WHERE done_at IS NULL OR state = 'needs_operator';

INSERT INTO issuance_submissions (request_id, submitting_at, ca_request_id)
SELECT request_id, submitting_at, ca_request_id FROM issuance_jobs
 WHERE (done_at IS NULL OR state = 'needs_operator')
   AND (submitting_at IS NOT NULL OR ca_request_id IS NOT NULL);

-- Mail and revocation jobs now carry what they need (the message; the serial and reason),
-- taken here once from the events that caused them.
INSERT INTO jobs (id, kind, payload, run_at, attempts, last_error, created_at)
SELECT m.notification_id, 'mail',
       jsonb_build_object('notification_id', m.notification_id,
                          'message', e.payload -> 'NotificationQueued' -> 'message'),
       m.run_at, m.attempts, m.last_error, m.created_at
  FROM mail_jobs m
  JOIN events e ON e.aggregate_type = 'Notification' AND e.aggregate_id = m.notification_id::text
               AND e.event_type = 'NotificationQueued'
 WHERE m.done_at IS NULL;

INSERT INTO jobs (id, kind, payload, run_at, attempts, last_error, created_at)
SELECT r.certificate_id, 'revocation',
       jsonb_build_object('certificate_id', r.certificate_id,
                          'serial', i.payload -> 'CertificateIssued' -> 'certificate' -> 'serial_number',
                          'reason', v.payload -> 'CertificateRevoked' -> 'reason'),
       r.run_at, r.attempts, r.last_error, r.created_at
  FROM revocation_jobs r
  JOIN events i ON i.aggregate_type = 'Certificate' AND i.aggregate_id = r.certificate_id::text
               AND i.event_type = 'CertificateIssued'
  JOIN events v ON v.aggregate_type = 'Certificate' AND v.aggregate_id = r.certificate_id::text
               AND v.event_type = 'CertificateRevoked'
 WHERE r.done_at IS NULL;

INSERT INTO jobs (id, kind, ordering_key, payload, run_at, attempts, last_error, created_at)
SELECT id, 'chat:' || platform, platform || '/' || request_id,
       payload || jsonb_build_object('kind', kind, 'subject', request_id),
       run_at, attempts, last_error, created_at
  FROM chat_jobs WHERE done_at IS NULL
 ORDER BY seq;

DROP TABLE issuance_jobs, mail_jobs, revocation_jobs, chat_jobs;
