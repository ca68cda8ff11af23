-- name: pending-approvals
-- purpose: Approvals still waiting for a decision, oldest first, with how long they have waited.
SELECT request_number, common_name, certificate_type, requester_email, approver_email,
       submitted_at, approval_created_at, pending_hours
  FROM v_pending_approvals
