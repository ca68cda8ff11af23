//! Every Discord interaction is verified before anything reads it: serenity's Ed25519
//! verifier over `timestamp || raw body` with the application's public key. Discord sends
//! badly signed requests on purpose and drops endpoints that accept them, so every failure
//! is 401. Timestamps outside a five-minute window are refused too (replays).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Interactions are small; anything larger is not from Discord.
const MAX_BODY: usize = 1024 * 1024;
/// How old (or how far ahead) a signed timestamp may be.
const MAX_AGE_SECONDS: i64 = 300;

/// The verifier for one application's public key.
#[derive(Clone)]
pub struct Verifier(serenity::interactions_endpoint::Verifier);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// A verifier for the public key; `None` when it is not a valid Ed25519 point.
    pub fn new(key: [u8; 32]) -> Option<Self> {
        serenity::interactions_endpoint::Verifier::try_new(key)
            .ok()
            .map(Self)
    }

    /// Whether `signature` (hex) signs `timestamp || body`.
    pub fn verify(&self, signature: &str, timestamp: &str, body: &[u8]) -> bool {
        self.0.verify(signature, timestamp, body).is_ok()
    }
}

fn reject(why: &'static str) -> Response {
    tracing::warn!(why, "discord request rejected");
    (StatusCode::UNAUTHORIZED, why).into_response()
}

/// The layer: only verified, fresh requests reach the handler.
pub async fn verified(State(verifier): State<Verifier>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
    ) else {
        return reject("missing signature");
    };
    if !verifier.verify(signature, timestamp, &bytes) {
        return reject("invalid request signature");
    }
    let fresh = timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|sent| (chrono::Utc::now().timestamp() - sent).abs() <= MAX_AGE_SECONDS);
    if !fresh {
        return reject("stale timestamp");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;

    #[test]
    fn only_the_applications_key_signs() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
        let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32 bytes");
        let verifier = Verifier::new(public).expect("valid key");
        let signature: String = pair
            .sign(b"1700000000{\"type\":1}")
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(verifier.verify(&signature, "1700000000", b"{\"type\":1}"));
        assert!(!verifier.verify(&signature, "1700000001", b"{\"type\":1}"));
        assert!(!verifier.verify(&signature, "1700000000", b"{\"type\":2}"));
        assert!(!verifier.verify("00", "1700000000", b"{\"type\":1}"));
    }
}
