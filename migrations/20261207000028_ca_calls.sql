-- Each CA's calls by operation, for operators (`cert-assistant projections status`): when one
-- last worked, when one last failed and why. Written by every replica as calls end.
CREATE TABLE ca_calls
(
    ca              varchar(20) NOT NULL,
    operation       varchar(30) NOT NULL,
    calls           bigint      NOT NULL DEFAULT 0,
    failures        bigint      NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_failure    varchar(500),
    PRIMARY KEY (ca, operation)
);
