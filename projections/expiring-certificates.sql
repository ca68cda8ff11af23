-- name: expiring-certificates
-- purpose: Active certificates that expire within the next N days, soonest first.
-- param: days (integer, default 30): how many days ahead to look
SELECT serial_number, common_name, owner_email, request_number, valid_to,
       days_until_expiry, expiry_status
  FROM v_active_certificates
 WHERE valid_to < now() + make_interval(days => (:days)::int)
 ORDER BY valid_to
