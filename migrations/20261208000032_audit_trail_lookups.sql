-- The dashboard's audit trail finds a person's or a resource's rows by a whole e-mail
-- address, request number or serial typed as its filter: these indexes find them (and count
-- them) without reading the whole trail, as a substring match must. Both are partitioned
-- indexes, one per monthly partition.
CREATE INDEX idx_audit_logs_user_email ON audit_logs (lower(user_email));
CREATE INDEX idx_audit_logs_resource_identifier ON audit_logs (resource_identifier);
