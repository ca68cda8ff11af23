-- Revocation reasons that need an approver's consent before the certificate is revoked
-- (a JSON list of RFC 5280 reason codes, e.g. ["cessation_of_operation"]). None by default:
-- a revocation is usually urgent. Admins' revocations never wait.
INSERT INTO system_config (config_key, config_value, value_type, description)
VALUES ('revocation.approval_required_reasons', '[]', 'json',
        'Revocation reasons that need an approver before the certificate is revoked')
ON CONFLICT (config_key) DO NOTHING;

COMMENT ON COLUMN chat_jobs.request_id IS
    'The request the job is about; for a revocation waiting for an approver, the certificate';
COMMENT ON COLUMN chat_messages.request_id IS
    'The request the message is about; for a revocation waiting for an approver, the certificate';
