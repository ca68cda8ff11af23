-- Tells the services which certificate's series in `/metrics` may have changed, so the active
-- certificates they keep in memory (projections::gauges) follow every replica's projector:
-- 'certificate <id>' when a certificate row is written in a way its series shows (not on
-- downloads), 'owner <user id>' when an owner's department changes, 'all' when the table
-- is truncated (a rebuild). Delivered at commit; not durable, so a listener that lost its
-- connection reloads everything before it answers from memory again.
CREATE FUNCTION certificates_notify_active()
RETURNS TRIGGER AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('active_certificates', 'all');
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('active_certificates', 'certificate ' || OLD.id);
    ELSE
        PERFORM pg_notify('active_certificates', 'certificate ' || NEW.id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER certificates_notify_active_after_write
    AFTER INSERT OR DELETE
        OR UPDATE OF status, deleted_at, serial_number, common_name, issuer_dn, valid_to,
                     user_id, request_id
    ON certificates
    FOR EACH ROW EXECUTE FUNCTION certificates_notify_active();

CREATE TRIGGER certificates_notify_active_after_truncate
    AFTER TRUNCATE ON certificates
    FOR EACH STATEMENT EXECUTE FUNCTION certificates_notify_active();

CREATE FUNCTION users_notify_department()
RETURNS TRIGGER AS $$
BEGIN
    PERFORM pg_notify('active_certificates', 'owner ' || NEW.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER users_notify_department_after_update
    AFTER UPDATE OF department ON users
    FOR EACH ROW WHEN (OLD.department IS DISTINCT FROM NEW.department)
    EXECUTE FUNCTION users_notify_department();
