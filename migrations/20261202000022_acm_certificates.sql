-- Certificates of the public CA (AWS Certificate Manager), by ARN: a projection of the
-- request and certificate events, kept apart so the documented tables keep their columns
-- (an ARN is not an ADCS request id). A row appears when ACM answers the request, gets its
-- certificate when ACM issues it, and counts ACM's managed renewals.
CREATE TABLE acm_certificates
(
    arn            varchar(2048) PRIMARY KEY,
    request_id     uuid          NOT NULL UNIQUE REFERENCES certificate_requests (id),
    certificate_id uuid UNIQUE REFERENCES certificates (id),
    -- 'pending' (ACM waits for the DNS validation records), 'issued', 'revoked'
    status         varchar(20)   NOT NULL,
    -- Whether the certificate and its key were exported (servers outside AWS); false when it
    -- stays in ACM for AWS services to use.
    exported       boolean       NOT NULL DEFAULT true,
    serial_number  varchar(100),
    not_after      timestamptz,
    requested_at   timestamptz   NOT NULL,
    issued_at      timestamptz,
    renewed_at     timestamptz,
    renewals       integer       NOT NULL DEFAULT 0,
    updated_at     timestamptz   NOT NULL,
    CONSTRAINT valid_acm_status CHECK (status IN ('pending', 'issued', 'revoked'))
);

GRANT SELECT ON acm_certificates TO cert_assistant_auditor;

-- A certificate ACM renewed is found by its new serial, as by its first.
CREATE INDEX idx_events_renewed_serial
    ON events ((payload -> 'CertificateRenewedAtCa' -> 'renewal' ->> 'serial_number'))
    WHERE event_type = 'CertificateRenewedAtCa';
