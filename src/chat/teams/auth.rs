//! Who may post to `/api/messages`: the Bot Framework, proven by a Bearer JWT. The token is
//! checked before anything changes: RS256 with a key from the published OpenID metadata
//! (fetched, cached, refetched when an unknown key id appears — one fetch at a time, at most
//! once a minute whether it worked or not, keeping the old keys while a fetch fails), issuer,
//! audience = our app id,
//! five minutes of clock skew, the key's endorsements include the activity's channel, and the
//! `serviceurl` claim is the activity's `serviceUrl`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// How long fetched keys are trusted before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Unknown key ids trigger a refetch at most this often.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// Clock skew allowed.
const LEEWAY_SECONDS: u64 = 300;

/// Why a token was refused: 401 (not a valid token) or 403 (valid, but not for this
/// activity).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, badly signed, expired, wrong issuer or audience.
    #[error("{0}")]
    Unauthorized(String),
    /// The key is not endorsed for the channel, or the token names another service URL.
    #[error("{0}")]
    Forbidden(String),
}

#[derive(Clone)]
pub(crate) struct Key {
    key: DecodingKey,
    endorsements: Vec<String>,
}

#[derive(Default)]
struct Keys {
    by_id: HashMap<String, Key>,
    /// The last fetch that worked.
    fetched: Option<Instant>,
    /// The last fetch, whether it worked or not.
    attempted: Option<Instant>,
}

impl Keys {
    /// The key for `kid` from what is cached: `Ok(None)` when a fetch is due.
    fn cached(&self, kid: &str) -> Result<Option<Key>, AuthError> {
        let fresh = self.fetched.is_some_and(|at| at.elapsed() < KEYS_TTL);
        if fresh && let Some(key) = self.by_id.get(kid) {
            return Ok(Some(key.clone()));
        }
        if self
            .attempted
            .is_some_and(|at| at.elapsed() < REFETCH_AT_MOST_EVERY)
        {
            // Fetched a moment ago: an unknown id stays unknown, and a key whose refresh
            // failed is still used.
            return match self.by_id.get(kid) {
                Some(key) => Ok(Some(key.clone())),
                None => Err(AuthError::Unauthorized("unknown signing key".to_owned())),
            };
        }
        Ok(None)
    }
}

/// The token checker.
#[derive(Clone)]
pub struct Authenticator {
    http: reqwest::Client,
    metadata_url: String,
    issuer: String,
    app_id: String,
    keys: Arc<RwLock<Keys>>,
    /// Held while fetching: one fetch at a time, however many tokens wait for it.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("metadata_url", &self.metadata_url)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Metadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
    #[serde(default)]
    endorsements: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    serviceurl: Option<String>,
}

impl Authenticator {
    /// Checks tokens for `app_id` issued by `issuer`, with keys from `metadata_url`.
    pub fn new(metadata_url: &str, issuer: &str, app_id: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            metadata_url: metadata_url.to_owned(),
            issuer: issuer.to_owned(),
            app_id: app_id.to_owned(),
            keys: Arc::default(),
            fetching: Arc::default(),
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, Key>> {
        let metadata: Metadata = self
            .http
            .get(&self.metadata_url)
            .send()
            .await
            .context("fetching the Bot Framework OpenID metadata")?
            .error_for_status()?
            .json()
            .await?;
        let jwks = self
            .http
            .get(&metadata.jwks_uri)
            .send()
            .await
            .context("fetching the Bot Framework signing keys")?
            .error_for_status()?
            .bytes()
            .await?;
        signing_keys(&jwks)
    }

    async fn key(&self, kid: &str) -> Result<Key, AuthError> {
        if let Some(key) = self.keys.read().await.cached(kid)? {
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.keys.read().await.cached(kid)? {
            return Ok(key);
        }
        let fetched = self.fetch().await;
        let mut keys = self.keys.write().await;
        keys.attempted = Some(Instant::now());
        match fetched {
            Ok(fetched) => {
                keys.by_id = fetched;
                keys.fetched = keys.attempted;
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "could not fetch the Bot Framework keys; the known ones stay in use"
                );
                if keys.by_id.is_empty() {
                    return Err(AuthError::Unauthorized(
                        "signing keys unavailable".to_owned(),
                    ));
                }
            }
        }
        keys.by_id
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::Unauthorized("unknown signing key".to_owned()))
    }

    /// Checks the `Authorization` header's token for an activity from `channel_id` carrying
    /// `service_url`.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        channel_id: &str,
        service_url: &str,
    ) -> Result<(), AuthError> {
        let (token, kid) = bearer_token(authorization)?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.app_id]);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| AuthError::Unauthorized(format!("invalid token: {e}")))?
            .claims;
        if !key.endorsements.iter().any(|e| e == channel_id) {
            return Err(AuthError::Forbidden(
                "the signing key is not endorsed for this channel".to_owned(),
            ));
        }
        let same_service = claims
            .serviceurl
            .as_deref()
            .is_some_and(|url| url.trim_end_matches('/') == service_url.trim_end_matches('/'));
        if !same_service {
            return Err(AuthError::Forbidden(
                "the token was issued for another service URL".to_owned(),
            ));
        }
        Ok(())
    }
}

/// The RSA signing keys of a JWKS document, by key id (other kinds of keys are skipped).
pub(crate) fn signing_keys(document: &[u8]) -> anyhow::Result<HashMap<String, Key>> {
    let jwks: Jwks =
        serde_json::from_slice(document).context("the signing keys are not a JWKS document")?;
    let mut keys = HashMap::new();
    for jwk in jwks.keys {
        let (Some(kid), "RSA", Some(n), Some(e)) = (jwk.kid, jwk.kty.as_str(), jwk.n, jwk.e) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_rsa_components(&n, &e) {
            keys.insert(
                kid,
                Key {
                    key,
                    endorsements: jwk.endorsements,
                },
            );
        }
    }
    Ok(keys)
}

/// The bearer token of an `Authorization` header and the id of the key it names, if it is an
/// RS256 JWT at all; its signature and claims are checked afterwards.
pub(crate) fn bearer_token(authorization: Option<&str>) -> Result<(&str, String), AuthError> {
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::Unauthorized("missing bearer token".to_owned()))?;
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| AuthError::Unauthorized("malformed token".to_owned()))?;
    if header.alg != Algorithm::RS256 {
        return Err(AuthError::Unauthorized("unexpected algorithm".to_owned()));
    }
    let kid = header
        .kid
        .ok_or_else(|| AuthError::Unauthorized("token names no key".to_owned()))?;
    Ok((token, kid))
}
