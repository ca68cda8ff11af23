-- A job continues the trace of the event that queued it: the W3C `traceparent` of the span
-- that appended the event (set only while traces are exported).
ALTER TABLE jobs ADD COLUMN traceparent varchar(55);
COMMENT ON COLUMN jobs.traceparent IS
    'W3C Trace Context of the span whose event queued the job; its run continues that trace';
