-- name: request-summary
-- purpose: Requests per day and how many of them are pending, approved, rejected, issued or failed.
-- param: days (integer, default 30): how many days back
SELECT request_date, total_requests, pending, approved, rejected, issued, failed
  FROM v_request_summary
 WHERE request_date >= current_date - (:days)::int
