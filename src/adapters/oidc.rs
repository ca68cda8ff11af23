//! Signing in through the organisation's identity provider (Azure AD, Okta, any OpenID
//! Connect provider) with the `openidconnect` crate: the authorization code flow with PKCE
//! and a nonce. The provider's discovery document and keys are read when first needed and
//! again after an hour (providers rotate their keys), so a provider that is down delays
//! nobody's start-up. What comes back is the e-mail address the ID token vouches for, once
//! its signature, issuer, audience, expiry and nonce are checked.

use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::RwLock;

use crate::domain::values::Email;

/// How long the provider's discovery document and keys are trusted before being read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Why a sign-in through the provider did not give a person. Each says what the person can
/// do; the details (never a token or secret) go to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered what OpenID Connect does not allow.
    #[error("the sign-in service could not be reached; try again in a moment")]
    Unreachable,
    /// The provider refused, or its answer did not check out.
    #[error("the sign-in was not accepted; start again")]
    Refused,
    /// The ID token names nobody by a verified e-mail address.
    #[error("your sign-in does not say your e-mail address, so you cannot be recognised here")]
    NoEmail,
}

/// Where to send the browser, and what it must bring back.
#[derive(Debug)]
pub struct Started {
    /// The provider's authorization URL.
    pub url: String,
    /// The `state` it will hand back.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
}

/// The organisation's identity provider.
pub struct IdentityProvider {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: SecretString,
    redirect: RedirectUrl,
    name: String,
    http: reqwest::Client,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

impl IdentityProvider {
    /// The provider at `issuer`, where this service is the client `client_id`, sending
    /// people back to `redirect`; `name` is how the sign-in page names it.
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: SecretString,
        redirect: &str,
        name: &str,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer send us anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            issuer: IssuerUrl::new(issuer.trim_end_matches('/').to_owned())?,
            client_id: ClientId::new(client_id.to_owned()),
            client_secret,
            redirect: RedirectUrl::new(redirect.to_owned())?,
            name: name.to_owned(),
            http,
            metadata: RwLock::new(None),
        })
    }

    /// How the sign-in page names the provider.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider's discovery document and keys (`fresh`: read again now).
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, ProviderError> {
        if !fresh
            && let Some((metadata, read)) = self.metadata.read().await.as_ref()
            && read.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|error| {
                tracing::warn!(issuer = self.issuer.as_str(), %error, "the identity provider's discovery failed");
                ProviderError::Unreachable
            })?;
        *self.metadata.write().await = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(ClientSecret::new(
                self.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// A new sign-in: the provider's URL to send the browser to, asking for the person's
    /// e-mail address.
    pub async fn start(&self) -> Result<Started, ProviderError> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// The person the provider vouches for: `code` exchanged (with the PKCE `verifier`), the
    /// ID token's signature, issuer, audience, expiry and `nonce` checked, and its e-mail
    /// address (`email`, unless marked unverified; else a `preferred_username` that is one,
    /// as Azure AD gives).
    pub async fn finish(
        &self,
        code: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<Email, ProviderError> {
        let refused = |what: &str, error: &dyn std::fmt::Display| {
            tracing::warn!(issuer = self.issuer.as_str(), %error, "{what}");
            ProviderError::Refused
        };
        let client = self.client(self.metadata(false).await?);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|error| refused("the provider has no token endpoint", &error))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|error| refused("the provider did not exchange the code", &error))?;
        let id_token = tokens.id_token().ok_or_else(|| {
            refused(
                "the provider sent no ID token",
                &"no id_token in the token response",
            )
        })?;
        let nonce = Nonce::new(nonce.to_owned());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => claims.clone(),
            Err(first) => {
                // The provider may have rotated its keys since they were read.
                let client = self.client(self.metadata(true).await?);
                match id_token.claims(&client.id_token_verifier(), &nonce) {
                    Ok(claims) => claims.clone(),
                    Err(_) => return Err(refused("the ID token did not check out", &first)),
                }
            }
        };
        if claims.email_verified() == Some(false) {
            return Err(ProviderError::NoEmail);
        }
        let email = claims
            .email()
            .map(|email| email.as_str().to_owned())
            .or_else(|| {
                claims
                    .preferred_username()
                    .map(|name| name.as_str().to_owned())
            })
            .and_then(|text| Email::parse(&text).ok())
            .ok_or(ProviderError::NoEmail)?;
        Ok(email)
    }
}
