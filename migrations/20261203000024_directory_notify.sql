-- Tells the services which user or setting changed, so the people and settings they keep in
-- memory (commands::directory) follow every replica's changes: the payload is
-- '<aggregate_type> <aggregate_id>'. Delivered at commit; not durable, so a listener that
-- lost its connection reloads everything before it answers from memory again.
CREATE FUNCTION events_notify_directory()
RETURNS TRIGGER AS $$
BEGIN
    PERFORM pg_notify('directory', NEW.aggregate_type || ' ' || NEW.aggregate_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_notify_directory_after_insert
    AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.aggregate_type IN ('Config', 'User'))
    EXECUTE FUNCTION events_notify_directory();
