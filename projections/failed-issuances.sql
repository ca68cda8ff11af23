-- name: failed-issuances
-- purpose: Requests whose issuance failed, with the CA's message and the retries spent.
-- param: days (integer, default 90): how many days back
SELECT cr.request_number, cr.common_name, u.email AS requester_email, cr.adcs_request_id,
       cr.adcs_error_message, cr.retry_count, cr.updated_at AS failed_at
  FROM certificate_requests cr
  JOIN users u ON u.id = cr.user_id
 WHERE cr.status = 'failed'
   AND cr.deleted_at IS NULL
   AND cr.updated_at >= now() - make_interval(days => (:days)::int)
 ORDER BY cr.updated_at DESC
