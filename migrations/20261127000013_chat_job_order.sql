-- Jobs about one request run in the order their events happened: an announcement never
-- overtakes the message it updates, even when both come from one feed batch or the first
-- one is retried.
ALTER TABLE chat_jobs ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX idx_chat_jobs_request_pending ON chat_jobs (request_id, seq) WHERE done_at IS NULL;
