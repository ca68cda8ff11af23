-- Revocations to carry to the CA, one job per revoked certificate, claimed with a lease.
CREATE TABLE revocation_jobs
(
    certificate_id uuid PRIMARY KEY,
    run_at         timestamptz NOT NULL DEFAULT now(),
    attempts       integer     NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    done_at        timestamptz,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_revocation_jobs_due ON revocation_jobs (run_at) WHERE done_at IS NULL;

INSERT INTO projector_checkpoints (name) VALUES ('revocation');
