-- Requests that wait too long for a decision are cancelled by the escalation job.
INSERT INTO system_config (config_key, config_value, value_type, description)
VALUES ('approval.stale_request.days', '14', 'integer',
        'Days a request may wait for approval before it is cancelled (0 = never)')
ON CONFLICT (config_key) DO NOTHING;
