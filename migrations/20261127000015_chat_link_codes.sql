-- Platforms that do not share e-mail addresses with bots (Discord) link an account to a work
-- e-mail with a one-time code sent to that address. Only a hash of the code is kept.
CREATE TABLE chat_link_codes
(
    platform   varchar(20)  NOT NULL,
    user_id    varchar(100) NOT NULL,
    email      varchar(255) NOT NULL,
    code_hash  bytea        NOT NULL,
    expires_at timestamptz  NOT NULL,
    attempts   integer      NOT NULL DEFAULT 0,
    created_at timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, user_id)
);
