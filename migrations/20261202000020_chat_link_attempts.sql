-- Every try to link a chat account to an e-mail address, kept per address (the person it
-- stands for, sub-address tag removed) across codes and chat accounts: how many codes were
-- mailed and how many wrong ones came back in the last hour decide whether the address
-- takes more (the lockout that keeps a mailed code from being guessed).
CREATE TABLE chat_link_attempts
(
    id       bigserial PRIMARY KEY,
    platform varchar(20)  NOT NULL,
    target   varchar(255) NOT NULL,
    user_id  varchar(100) NOT NULL,
    outcome  varchar(20)  NOT NULL CHECK (outcome IN ('code_sent', 'wrong_code', 'linked')),
    at       timestamptz  NOT NULL DEFAULT now()
);

CREATE INDEX idx_chat_link_attempts_target ON chat_link_attempts (platform, target, at);
