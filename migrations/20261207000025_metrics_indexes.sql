-- What `/metrics` counts at every scrape, read from indexes instead of the tables: requests
-- and certificates by status (index-only scans once vacuumed), and the jobs not done (queued
-- ones through idx_jobs_due, failed ones through this), so no scrape reads the done jobs.
CREATE INDEX idx_certificate_requests_live_status ON certificate_requests (status)
    WHERE deleted_at IS NULL;
CREATE INDEX idx_certificates_live_status ON certificates (status) WHERE deleted_at IS NULL;
CREATE INDEX idx_jobs_failed ON jobs (kind) WHERE state = 'failed';
