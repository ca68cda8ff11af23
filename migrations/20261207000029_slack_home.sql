-- Slack App Home: who opened the bot's Home tab (and as whom), so their page is published
-- again when their requests, certificates or the approval queue change.
CREATE TABLE slack_home_tabs
(
    team_id      varchar(50)  NOT NULL,
    user_id      varchar(50)  NOT NULL,
    email        varchar(255) NOT NULL,
    opened_at    timestamptz  NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (team_id, user_id)
);

CREATE INDEX slack_home_tabs_email ON slack_home_tabs (lower(email));
