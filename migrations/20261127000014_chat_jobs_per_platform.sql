-- One delivery job per chat platform: each platform's notifier claims and finishes its own.
ALTER TABLE chat_jobs ADD COLUMN platform varchar(20) NOT NULL DEFAULT 'slack';
ALTER TABLE chat_jobs ALTER COLUMN platform DROP DEFAULT;
DROP INDEX idx_chat_jobs_request_pending;
CREATE INDEX idx_chat_jobs_request_pending ON chat_jobs (platform, request_id, seq)
    WHERE done_at IS NULL;
