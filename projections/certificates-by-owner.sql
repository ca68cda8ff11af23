-- name: certificates-by-owner
-- purpose: Certificates per owner and department, by status.
-- param: department (text, default %): a department name, or % for all
SELECT u.email AS owner_email, coalesce(cr.department, u.department) AS department,
       count(*) FILTER (WHERE c.status = 'active') AS active,
       count(*) FILTER (WHERE c.status = 'expired') AS expired,
       count(*) FILTER (WHERE c.status = 'revoked') AS revoked,
       count(*) AS total
  FROM certificates c
  JOIN users u ON u.id = c.user_id
  JOIN certificate_requests cr ON cr.id = c.request_id
 WHERE c.deleted_at IS NULL
   AND coalesce(cr.department, u.department, '') LIKE :department
 GROUP BY u.email, coalesce(cr.department, u.department)
 ORDER BY total DESC, owner_email
