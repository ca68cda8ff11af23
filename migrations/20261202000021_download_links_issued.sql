-- Download links made per person (their e-mail identity) in the last hour: what limits how
-- many links one person can ask for. Each person's rows older than an hour are removed when
-- they ask again, so the table holds at most an hour of links.
CREATE TABLE download_links_issued
(
    id       bigserial PRIMARY KEY,
    identity varchar(255) NOT NULL,
    at       timestamptz  NOT NULL DEFAULT now()
);

CREATE INDEX idx_download_links_issued_identity ON download_links_issued (identity, at);
