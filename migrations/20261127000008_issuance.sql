-- The embedded CA (used when no ADCS is configured): its two certificates with their keys
-- encrypted under data keys, every certificate it issued (for retrieval and the CRL), and
-- the CRL numbers it used.
CREATE TABLE embedded_ca
(
    name           varchar(20) PRIMARY KEY,
    certificate_pem text       NOT NULL,
    key_data_key   uuid        NOT NULL REFERENCES data_keys (id),
    key_ciphertext text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT embedded_ca_name CHECK (name IN ('root', 'issuing'))
);

CREATE TABLE embedded_ca_certificates
(
    serial          varchar(40) PRIMARY KEY,
    certificate_pem text        NOT NULL,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    not_after       timestamptz NOT NULL,
    revoked_at      timestamptz,
    reason_code     smallint
);

CREATE SEQUENCE embedded_ca_crl_number;

-- The issuance saga's jobs: one per approved request. A worker claims a job with a lease;
-- `submitting_at` is written before the CA is called and `ca_request_id` right after, so a
-- crash in between is detected (and handed to an operator) instead of submitting twice.
CREATE TABLE issuance_jobs
(
    request_id    uuid PRIMARY KEY,
    state         varchar(20) NOT NULL DEFAULT 'new',
    run_at        timestamptz NOT NULL DEFAULT now(),
    attempts      integer     NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    submitting_at timestamptz,
    ca_request_id varchar(100),
    last_error    text,
    done_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT issuance_job_state CHECK (state IN ('new', 'pending', 'done', 'failed', 'needs_operator'))
);

CREATE INDEX idx_issuance_jobs_due ON issuance_jobs (run_at) WHERE done_at IS NULL;

INSERT INTO projector_checkpoints (name) VALUES ('issuance');

INSERT INTO system_config (config_key, config_value, value_type, description) VALUES
('issuance.max_retries', '5', 'integer',
 'Transient CA failures (connection, timeout, 5xx) retried before a request fails');
