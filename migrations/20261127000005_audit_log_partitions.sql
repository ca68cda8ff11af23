-- Retention: audit_logs becomes partitioned by month (as the schema document's
-- "Partitioning" section suggests), so old months can be archived and dropped cheaply.
--
-- Columns, defaults, CHECK constraints, the foreign key and every documented index keep their
-- names and meaning. One thing cannot stay as documented: PostgreSQL requires the partition
-- key in every unique constraint, so the primary key becomes (id, "timestamp"). Ids are still
-- unique (UUIDs; the projector derives them from the event's identity).

DROP FUNCTION audit_log_content(audit_logs);
ALTER TABLE audit_log_chain DROP CONSTRAINT audit_log_chain_audit_id_fkey;

CREATE TABLE audit_logs_partitioned
    (LIKE audit_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE ("timestamp");

-- Rows outside every monthly partition (far past or future) land here instead of failing.
CREATE TABLE audit_logs_default PARTITION OF audit_logs_partitioned DEFAULT;

-- This month and the next three; the service keeps creating months ahead.
DO $$
DECLARE
    month date;
BEGIN
    FOR i IN 0..3 LOOP
        month := (date_trunc('month', now()) + make_interval(months => i))::date;
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_logs_partitioned FOR VALUES FROM (%L) TO (%L)',
            'audit_logs_' || to_char(month, 'YYYY_MM'),
            month,
            (month + interval '1 month')::date
        );
    END LOOP;
END
$$;

INSERT INTO audit_logs_partitioned SELECT * FROM audit_logs;
DROP TABLE audit_logs;
ALTER TABLE audit_logs_partitioned RENAME TO audit_logs;

ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_pkey PRIMARY KEY (id, "timestamp");
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id);

CREATE INDEX idx_audit_logs_event_type ON audit_logs(event_type);
CREATE INDEX idx_audit_logs_event_category ON audit_logs(event_category);
CREATE INDEX idx_audit_logs_user_id ON audit_logs(user_id);
CREATE INDEX idx_audit_logs_timestamp ON audit_logs(timestamp DESC);
CREATE INDEX idx_audit_logs_resource_type ON audit_logs(resource_type);
CREATE INDEX idx_audit_logs_resource_id ON audit_logs(resource_id);
CREATE INDEX idx_audit_logs_result ON audit_logs(result);
CREATE INDEX idx_audit_logs_failures ON audit_logs(timestamp DESC)
WHERE result = 'failure';
CREATE INDEX idx_audit_logs_metadata ON audit_logs USING GIN (metadata);

CREATE FUNCTION audit_log_content(a audit_logs) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_array(
        a.id, a.event_type, a.event_category, a.severity, a.user_id, a.user_email, a.user_role,
        host(a.ip_address), a.user_agent, a.session_id, a.resource_type, a.resource_id,
        a.resource_identifier, a.action, a.result, a.error_message, a.metadata,
        to_char(a."timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text
$$;

-- The chain now points at (id, timestamp); archiving a row removes its chain entry too (the
-- archive file keeps both).
ALTER TABLE audit_log_chain ADD COLUMN audit_timestamp timestamptz;
UPDATE audit_log_chain c SET audit_timestamp = a."timestamp" FROM audit_logs a WHERE a.id = c.audit_id;
DELETE FROM audit_log_chain WHERE audit_timestamp IS NULL;
ALTER TABLE audit_log_chain ALTER COLUMN audit_timestamp SET NOT NULL;
ALTER TABLE audit_log_chain ADD CONSTRAINT audit_log_chain_audit_fkey
    FOREIGN KEY (audit_id, audit_timestamp) REFERENCES audit_logs (id, "timestamp") ON DELETE CASCADE;

GRANT SELECT ON audit_logs TO cert_assistant_auditor;

INSERT INTO system_config (config_key, config_value, value_type, description) VALUES
('audit.retention.days', '365', 'integer',
 'Audit rows older than this are exported to the artifact store (JSON Lines) and then deleted');
