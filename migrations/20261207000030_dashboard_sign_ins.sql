-- The dashboard's one-time sign-in links that were used: a link is spent once (its id here),
-- and a row outlives its link's expiry by nothing (rows past it may be deleted at any time).
CREATE TABLE dashboard_sign_ins
(
    id         uuid PRIMARY KEY,
    used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
