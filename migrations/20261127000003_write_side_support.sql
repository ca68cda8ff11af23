-- Write-side tables that are not projections: they support command handling.

-- Request numbers REQ-YYYYMMDD-XXXXX: a counter per day, taken with an atomic upsert, so
-- replicas never hand out the same number; and the number -> request id mapping for lookups.
CREATE TABLE request_number_counters
(
    day        date    PRIMARY KEY,
    last_value integer NOT NULL CHECK (last_value BETWEEN 1 AND 99999)
);

CREATE TABLE request_number_allocations
(
    request_number varchar(20) PRIMARY KEY,
    request_id     uuid        NOT NULL UNIQUE,
    allocated_at   timestamptz NOT NULL DEFAULT now()
);

-- Data keys of generated private keys, wrapped by the key-encryption key. Deleting a wrapped
-- key (destroyed_at set, wrapped_key NULL) makes its private key undecryptable for good,
-- although the ciphertext stays in the immutable events (crypto-shredding).
CREATE TABLE data_keys
(
    id           uuid PRIMARY KEY,
    kek_id       text        NOT NULL,
    wrapped_key  bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CONSTRAINT data_key_present_or_destroyed CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- Approval policy: how many approvals a request needs, by certificate type or criticality.
INSERT INTO system_config (config_key, config_value, value_type, description) VALUES
('approval.required_approvals', '{"default": 1, "code_signing": 2, "critical": 2}', 'json',
 'Approvals a request needs: "default", or by certificate type or criticality level (the largest applies)');
