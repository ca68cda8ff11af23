-- Microsoft Teams: where each tenant's Bot Framework connector lives (activities name it;
-- proactive messages need it), and room for Teams' long conversation ids.
CREATE TABLE teams_service_urls
(
    tenant_id   varchar(100) PRIMARY KEY,
    service_url varchar(500) NOT NULL,
    updated_at  timestamptz  NOT NULL DEFAULT now()
);

ALTER TABLE chat_messages ALTER COLUMN channel TYPE varchar(500);
