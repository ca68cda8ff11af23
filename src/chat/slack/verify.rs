//! Every Slack request is verified before anything reads it: a per-route layer that checks
//! the timestamp window and the HMAC signature over the raw body, then hands the request on.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use slack_morphism::SlackSigningSecret;
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};

/// Slack's requests are small; anything larger is not from Slack.
const MAX_BODY: usize = 1024 * 1024;
/// The replay window Slack documents.
const MAX_AGE_SECONDS: i64 = 300;

/// The verifier, shared by the Slack routes.
#[derive(Clone)]
pub struct Verifier(SlackEventSignatureVerifier);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier([REDACTED])")
    }
}

impl Verifier {
    /// A verifier for `secret`.
    pub fn new(secret: &str) -> Self {
        Self(SlackEventSignatureVerifier::new(&SlackSigningSecret(
            secret.to_owned(),
        )))
    }

    /// Checks `signature` over `timestamp` and `body`, then the timestamp's age.
    pub fn verify(
        &self,
        signature: &str,
        timestamp: &str,
        body: &str,
    ) -> Result<(), SlackEventSignatureVerifierError> {
        self.0.verify(signature, body, timestamp)
    }
}

/// Why a request was turned away (logged without secrets; the sender only sees the status).
fn reject(status: StatusCode, why: &'static str) -> Response {
    tracing::warn!(status = status.as_u16(), why, "slack request rejected");
    (status, why).into_response()
}

/// The layer: 400 for a missing, malformed or stale timestamp, 401 for a missing or wrong
/// signature; only verified requests reach the handlers. `ssl_check` probes (which Slack's
/// own SDKs answer without verifying) get 200 and nothing else.
pub async fn verified(State(verifier): State<Verifier>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return reject(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    };
    if bytes.starts_with(b"ssl_check=1") {
        return StatusCode::OK.into_response();
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(timestamp) = header("x-slack-request-timestamp") else {
        return reject(StatusCode::BAD_REQUEST, "missing timestamp");
    };
    let Ok(sent_at) = timestamp.trim().parse::<i64>() else {
        return reject(StatusCode::BAD_REQUEST, "malformed timestamp");
    };
    if (chrono::Utc::now().timestamp() - sent_at).abs() > MAX_AGE_SECONDS {
        return reject(StatusCode::BAD_REQUEST, "stale timestamp");
    }
    let Some(signature) = header("x-slack-signature") else {
        return reject(StatusCode::UNAUTHORIZED, "missing signature");
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return reject(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    if verifier.verify(&signature, &timestamp, text).is_err() {
        return reject(StatusCode::UNAUTHORIZED, "invalid signature");
    }
    // A redelivery of something already received: acknowledge, never act twice.
    if parts.headers.contains_key("x-slack-retry-num") {
        tracing::info!("slack retry acknowledged without acting again");
        return StatusCode::OK.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's published example (api.slack.com/authentication/verifying-requests-from-slack).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_official_test_vector_verifies() {
        // The signature matches; only the (2018) timestamp is refused as too old, which the
        // verifier checks after the signature.
        let result = Verifier::new(SECRET).verify(SIGNATURE, TIMESTAMP, BODY);
        assert!(
            matches!(
                result,
                Err(SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_))
            ),
            "{result:?}"
        );
        let tampered =
            Verifier::new(SECRET).verify(SIGNATURE, TIMESTAMP, &BODY.replace("foobar", "foobaz"));
        assert!(matches!(
            tampered,
            Err(SlackEventSignatureVerifierError::WrongSignatureError(_))
        ));
    }

    #[test]
    fn the_verifier_never_prints_its_secret() {
        assert_eq!(
            format!("{:?}", Verifier::new(SECRET)),
            "Verifier([REDACTED])"
        );
    }
}
