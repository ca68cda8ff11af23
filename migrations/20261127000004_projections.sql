-- Support for the durable projector that builds the documented tables from the event feed.

-- One row per consumer: where it is in the feed. The row is also the consumer's lease: a
-- worker holds it with FOR UPDATE SKIP LOCKED in the same transaction that writes the
-- projected rows and moves the checkpoint, so several replicas never apply an event twice.
CREATE TABLE projector_checkpoints
(
    name            text PRIMARY KEY,
    last_tx_id      xid8        NOT NULL DEFAULT '0'::xid8,
    last_global_seq bigint      NOT NULL DEFAULT 0,
    events_applied  bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

INSERT INTO projector_checkpoints (name) VALUES ('read_model');

-- The last event applied per aggregate: re-applying an event (or an older one) changes
-- nothing, so projection writes are idempotent without touching the documented columns.
CREATE TABLE projection_positions
(
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    last_sequence  bigint NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Tamper evidence for audit_logs: each row's hash covers its content and the previous
-- row's hash, in the order the projector wrote them. `cert-assistant audit verify` recomputes
-- the chain.
CREATE TABLE audit_log_chain
(
    position  bigint PRIMARY KEY,
    audit_id  uuid   NOT NULL UNIQUE REFERENCES audit_logs (id) ON DELETE CASCADE,
    prev_hash bytea  NOT NULL,
    hash      bytea  NOT NULL
);

-- updated_at: the documented trigger stamps NOW() on every UPDATE. The projector writes the
-- event's own time instead (so a rebuild reproduces every row exactly); it says so with the
-- transaction-local setting cert_assistant.projector = 'on'. Every other UPDATE behaves as
-- documented.
CREATE OR REPLACE FUNCTION update_updated_at_column()
RETURNS TRIGGER AS $$
BEGIN
    IF current_setting('cert_assistant.projector', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ language 'plpgsql';

-- Auditors: read the read model and the views; never the event store, the write-side
-- tables, or private-key ciphertext. The role cannot log in by itself: grant it to the
-- auditors' own login roles (GRANT cert_assistant_auditor TO alice).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cert_assistant_auditor') THEN
        CREATE ROLE cert_assistant_auditor NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO cert_assistant_auditor;
GRANT SELECT ON users, certificate_requests, recommendation_answers, approvals, certificates,
    certificate_revocations, audit_logs, audit_log_chain, notifications, system_config
    TO cert_assistant_auditor;
GRANT SELECT (id, certificate_id, request_id, user_id, encryption_algorithm, encryption_key_id,
    download_allowed, downloaded, download_count, first_downloaded_at, last_downloaded_at,
    created_at, deleted_at) ON private_keys TO cert_assistant_auditor;
GRANT SELECT ON v_active_certificates, v_pending_approvals, v_request_summary
    TO cert_assistant_auditor;

-- The service runs the auditors' named queries under this role (SET ROLE), so it must be a
-- member.
DO $$
BEGIN
    EXECUTE format('GRANT cert_assistant_auditor TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'could not grant cert_assistant_auditor to %: %', current_user, SQLERRM;
END
$$;

-- The canonical content of an audit row for hashing: a JSON array keeps NULL distinct from
-- an empty string and leaves no separator ambiguity.
CREATE FUNCTION audit_log_content(a audit_logs) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_array(
        a.id, a.event_type, a.event_category, a.severity, a.user_id, a.user_email, a.user_role,
        host(a.ip_address), a.user_agent, a.session_id, a.resource_type, a.resource_id,
        a.resource_identifier, a.action, a.result, a.error_message, a.metadata,
        to_char(a."timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text
$$;
