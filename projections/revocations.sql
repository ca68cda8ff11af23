-- name: revocations
-- purpose: Certificates revoked in a period, with reason, who asked and who approved.
-- param: from (date, default 1970-01-01): first day of the period
-- param: to (date, default 9999-12-31): last day of the period
SELECT r.revoked_at, c.serial_number, c.common_name, r.reason_code, r.reason_text,
       u.email AS revoked_by, ap.email AS approved_by, r.approval_required, r.crl_updated_at
  FROM certificate_revocations r
  JOIN certificates c ON c.id = r.certificate_id
  JOIN users u ON u.id = r.user_id
  LEFT JOIN users ap ON ap.id = r.approver_id
 WHERE r.revoked_at >= (:from)::date
   AND r.revoked_at < (:to)::date + 1
 ORDER BY r.revoked_at
