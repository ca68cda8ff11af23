-- E-mail delivery jobs, one per e-mail notification queued, claimed with a lease by the mail
-- worker; delivery results go back to the notification aggregate as events.
CREATE TABLE mail_jobs
(
    notification_id uuid PRIMARY KEY,
    run_at          timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    done_at         timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_mail_jobs_due ON mail_jobs (run_at) WHERE done_at IS NULL;

INSERT INTO projector_checkpoints (name) VALUES ('mail_outbox');
