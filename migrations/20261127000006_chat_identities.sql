-- Chat identities: which e-mail (and so which user) a platform's user id belongs to, as the
-- platform last told us. A cache with a freshness time, not a source of truth.
CREATE TABLE chat_identities
(
    platform     varchar(20)  NOT NULL,
    workspace_id varchar(100) NOT NULL,
    user_id      varchar(100) NOT NULL,
    email        varchar(255) NOT NULL,
    display_name varchar(200),
    refreshed_at timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, workspace_id, user_id)
);

CREATE INDEX idx_chat_identities_email ON chat_identities (email);
