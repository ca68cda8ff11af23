-- The dashboard's overview counts the requests of the last 14 days by day: a range of
-- `created_at`, read through this index rather than a scan of every request. (Its
-- certificate list is ordered by expiry through the documented idx_certificates_valid_to.)
CREATE INDEX idx_requests_created_at ON certificate_requests (created_at) WHERE deleted_at IS NULL;
