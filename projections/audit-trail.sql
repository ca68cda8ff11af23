-- name: audit-trail
-- purpose: Everything recorded about one request or certificate (number, serial or id), in order.
-- param: resource (text): a request number (REQ-...), a certificate serial, or an id
SELECT a."timestamp", a.event_type, a.action, a.result, a.user_email, a.user_role,
       a.resource_type, a.resource_identifier, a.error_message, a.metadata -> 'details' AS details
  FROM audit_logs a
  LEFT JOIN audit_log_chain ch ON ch.audit_id = a.id
 WHERE a.resource_identifier = upper(:resource)
    OR a.resource_identifier = :resource
    OR a.resource_id::text = lower(:resource)
    OR a.resource_id IN (SELECT cr.id FROM certificate_requests cr
                           JOIN certificates c ON c.request_id = cr.id
                          WHERE c.serial_number = upper(:resource))
    OR a.resource_id IN (SELECT c.id FROM certificates c
                           JOIN certificate_requests cr ON c.request_id = cr.id
                          WHERE cr.request_number = upper(:resource))
 ORDER BY a."timestamp", ch.position
