//! ADCS Web Enrollment (certsrv) client: submits CSRs through `certfnsh.asp`, fetches
//! certificates through `certnew.cer`, and reads the pages the way real certsrv clients do:
//! by Content-Type first (localized servers change the English strings), then the page text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

pub mod chain;
mod connection;
pub mod ntlm;

use super::revoke_hook::RevokeHook;
use super::{AtCa, CaError, CertificateAuthority, Order, Submission};
use crate::domain::values::{CertificateType, RevocationReason};
use crate::ports::BoxFuture;

/// How the client logs in to certsrv.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Authentication {
    /// HTTP Basic (IIS's "Basic Authentication", off by default on ADCS).
    #[default]
    Basic,
    /// Windows Integrated Authentication with NTLM (IIS's default for certsrv), in the
    /// `NTLM` or the `Negotiate` scheme, whichever the server offers.
    Ntlm,
}

/// How to reach and log in to the CA.
#[derive(Debug, Clone)]
pub struct AdcsSettings {
    /// `https://adcs.example.com` (the server, without `/certsrv`).
    pub url: String,
    /// How to log in.
    pub authentication: Authentication,
    /// The account (`DOMAIN\\user`, `user@domain`).
    pub username: String,
    /// Its password.
    pub password: SecretString,
    /// PEM bundle of the CAs that sign the ADCS server's TLS certificate.
    pub ca_bundle_pem: Option<String>,
    /// PEM certificate and key for TLS client-certificate authentication.
    pub client_identity_pem: Option<SecretString>,
    /// Per request.
    pub timeout: Duration,
    /// Certificate type → template name; unlisted types use the defaults.
    pub templates: BTreeMap<String, String>,
    /// How revocations reach the CA; without one each becomes an operator's task.
    pub revoke_hook: Option<RevokeHook>,
}

/// A certsrv page, read.
#[derive(Debug)]
struct Page {
    /// Its Content-Type: `application/pkix-cert` for a certificate, HTML otherwise.
    content_type: String,
    text: String,
}

/// How long after ADCS refused the credentials the client stops trying them: an ADCS
/// account is locked out after a few failed logins, and every queued job would try once.
const REFUSED_PAUSE: Duration = Duration::from_secs(15 * 60);

/// The client.
#[derive(Debug, Clone)]
pub struct AdcsClient {
    http: reqwest::Client,
    url: String,
    login: Login,
    templates: BTreeMap<String, String>,
    revoke_hook: Option<RevokeHook>,
    /// When ADCS last refused the credentials.
    refused: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// The account, ready for the scheme in use.
#[derive(Debug, Clone)]
enum Login {
    Basic {
        username: String,
        password: SecretString,
    },
    Ntlm {
        identity: Arc<sspi::AuthIdentity>,
        /// One conversation at a time (an ADCS account is one login, however many jobs).
        turn: Arc<tokio::sync::Mutex<()>>,
        /// Each conversation opens a connection of its own ([`connection`]).
        tls: connection::Tls,
        timeout: Duration,
    },
}

/// Default templates of an ADCS installation.
fn default_template(kind: CertificateType) -> &'static str {
    match kind {
        CertificateType::WebServer | CertificateType::Database | CertificateType::Vpn => {
            "WebServer"
        }
        CertificateType::UserAuth => "User",
        CertificateType::Email => "EmailProtection",
        CertificateType::CodeSigning => "CodeSigning",
        CertificateType::Other => "Machine",
    }
}

impl AdcsClient {
    /// A client for `settings`.
    pub fn new(settings: AdcsSettings) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(bundle) = &settings.ca_bundle_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(bundle.as_bytes())? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let Some(identity) = &settings.client_identity_pem {
            builder = builder.identity(reqwest::Identity::from_pem(
                identity.expose_secret().as_bytes(),
            )?);
        }
        let login = match settings.authentication {
            Authentication::Basic => Login::Basic {
                username: settings.username,
                password: settings.password,
            },
            Authentication::Ntlm => Login::Ntlm {
                identity: Arc::new(ntlm::identity(&settings.username, &settings.password)?),
                turn: Arc::default(),
                tls: connection::Tls::new(
                    settings.ca_bundle_pem.as_deref(),
                    settings.client_identity_pem.as_ref(),
                )?,
                timeout: settings.timeout,
            },
        };
        Ok(Self {
            http: builder.build()?,
            url: settings.url.trim_end_matches('/').to_owned(),
            login,
            templates: settings.templates,
            revoke_hook: settings.revoke_hook,
            refused: Arc::default(),
        })
    }

    fn template(&self, kind: CertificateType) -> String {
        self.templates
            .get(kind.as_str())
            .cloned()
            .unwrap_or_else(|| default_template(kind).to_owned())
    }

    /// Sends `request` logged in, and sorts the answer: refused credentials, an outage, a
    /// request ADCS did not take, or the page, read to its end (with NTLM, before the next
    /// login may take the connection).
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Page, CaError> {
        if let Some(at) = *self.refused.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < REFUSED_PAUSE
        {
            return Err(CaError::Permanent(format!(
                "ADCS refused the credentials {} s ago; they are not tried again for {} \
                 minutes, so that the account is not locked out (check adcs.username, \
                 adcs.password and adcs.auth, then restart)",
                at.elapsed().as_secs(),
                REFUSED_PAUSE.as_secs() / 60
            )));
        }
        let response = match &self.login {
            Login::Basic { username, password } => {
                exchange(request.basic_auth(username, Some(password.expose_secret()))).await?
            }
            Login::Ntlm {
                identity,
                turn,
                tls,
                timeout,
            } => {
                let _turn = turn.lock().await;
                let response = ntlm_exchange(tls, *timeout, request, identity).await?;
                return self.judge(response).await;
            }
        };
        self.judge(response).await
    }

    async fn judge(&self, response: reqwest::Response) -> Result<Page, CaError> {
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED
            && matches!(self.login, Login::Basic { .. })
            && !offers_basic(&response)
        {
            return Err(CaError::Permanent(
                "ADCS does not accept Basic authentication on certsrv (it offers Windows \
                 authentication): set adcs.auth = \"ntlm\""
                    .to_owned(),
            ));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            return Err(CaError::Permanent(
                "ADCS refused the credentials (check adcs.username, adcs.password and \
                 adcs.auth)"
                    .to_owned(),
            ));
        }
        if status.is_server_error() {
            return Err(CaError::Transient(format!("ADCS answered {status}")));
        }
        if !status.is_success() {
            return Err(CaError::Permanent(format!("ADCS answered {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        let text = response
            .text()
            .await
            .map_err(|e| CaError::Transient(format!("reading ADCS's answer: {e}")))?;
        Ok(Page { content_type, text })
    }

    /// certsrv's page `page` (under `/certsrv/`) with `query`.
    async fn get(&self, page: &str, query: &[(&str, &str)]) -> Result<Page, CaError> {
        self.send(
            self.http
                .get(format!("{}/certsrv/{page}", self.url))
                .query(query),
        )
        .await
    }

    /// `certnew.cer?ReqID=…&Enc=b64`: the certificate when the Content-Type says so,
    /// otherwise the disposition on the page.
    async fn certificate(&self, req_id: &str) -> Result<Result<String, String>, CaError> {
        let page = self
            .get("certnew.cer", &[("ReqID", req_id), ("Enc", "b64")])
            .await?;
        if page.content_type == "application/pkix-cert" {
            return Ok(Ok(pem_certificate(&page.text)));
        }
        Ok(Err(disposition(&page.text).unwrap_or_else(|| {
            "no disposition on the page".to_owned()
        })))
    }

    /// What an operator checks before relying on the CA, as the service would do it: that
    /// certsrv is reached (TLS included) and takes the login, and that the CA chain can be
    /// read. Each check says what it found or, in plain words, what is wrong; the checks
    /// stop at the first failure.
    pub async fn check(&self) -> Vec<(&'static str, Result<String, String>)> {
        let mut checks = Vec::new();
        let login = match self.login {
            Login::Basic { .. } => "Basic",
            Login::Ntlm { .. } => "NTLM",
        };
        match self.get("", &[]).await {
            Ok(_) => checks.push((
                "login",
                Ok(format!("certsrv answered and took the {login} login")),
            )),
            Err(error) => {
                checks.push(("login", Err(error.to_string())));
                return checks;
            }
        }
        let chain = self
            .chain(None)
            .await
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                let count = pem.matches("BEGIN CERTIFICATE").count();
                match count {
                    0 => Err("certsrv gave no CA certificate".to_owned()),
                    1 => Ok(
                        "1 certificate (the issuing CA only: relying parties need the root \
                         from elsewhere)"
                            .to_owned(),
                    ),
                    n => Ok(format!(
                        "{n} certificates, from the issuing CA up to the root"
                    )),
                }
            });
        checks.push(("CA chain", chain));
        checks
    }

    /// The CA's current chain, issuing CA first and the root last, in PEM: certcarc.asp says
    /// how often the CA certificate was renewed, and `certnew.p7b` with that renewal number
    /// holds the current CA certificate and the ones above it. A certsrv that answers no
    /// PKCS#7 gives its CA certificate alone (`certnew.cer`).
    async fn chain(&self, leaf: Option<&[u8]>) -> Result<String, CaError> {
        let page = self.get("certcarc.asp", &[]).await?;
        let renewals: String = page
            .text
            .split("nRenewals=")
            .nth(1)
            .map(|rest| {
                rest.trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect()
            })
            .filter(|digits: &String| !digits.is_empty())
            .unwrap_or_else(|| "0".to_owned());
        let query = [
            ("ReqID", "CACert"),
            ("Renewal", renewals.as_str()),
            ("Enc", "b64"),
        ];
        let pkcs7 = self.get("certnew.p7b", &query).await?;
        match chain::certificates(&pkcs7.text) {
            Ok(certificates) if !certificates.is_empty() => {
                Ok(chain::ordered_pem(leaf, &certificates))
            }
            _ => {
                let certificate = self.get("certnew.cer", &query).await?;
                Ok(pem_certificate(&certificate.text))
            }
        }
    }

    async fn issued(&self, ca_request_id: String) -> Result<Submission, CaError> {
        let certificate_pem = match self.certificate(&ca_request_id).await? {
            Ok(pem) => pem,
            Err(message) => return Ok(classify_disposition(ca_request_id, message)),
        };
        let leaf = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes())
            .ok()
            .map(|(_, pem)| pem.contents);
        let chain_pem = self.chain(leaf.as_deref()).await?;
        Ok(Submission::Issued {
            ca_request_id,
            certificate_pem,
            chain_pem,
            private_key: None,
        })
    }
}

/// Whether a 401 offers Basic (IIS lists each enabled scheme in a header of its own).
fn offers_basic(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            value
                .trim_start()
                .get(..5)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"))
        })
}

/// One round trip.
async fn exchange(request: reqwest::RequestBuilder) -> Result<reqwest::Response, CaError> {
    request.send().await.map_err(|e| {
        let why = causes(&e);
        if e.is_timeout() {
            CaError::Transient("ADCS did not answer in time".to_owned())
        } else if e.is_connect() {
            CaError::Transient(format!("cannot connect to ADCS ({why})"))
        } else {
            CaError::Transient(format!("ADCS request failed ({why})"))
        }
    })
}

/// What went wrong underneath an HTTP error (a refused connection, a TLS certificate that
/// did not verify), without the URL.
fn causes(error: &reqwest::Error) -> String {
    let mut why = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        why.push(cause.to_string());
        source = cause.source();
    }
    if why.is_empty() {
        "no detail".to_owned()
    } else {
        why.join(": ")
    }
}

/// `request` with NTLM, on a connection of its own: the NEGOTIATE message, the server's
/// CHALLENGE in its 401, then the request again with the AUTHENTICATE message. The scheme is
/// `NTLM`, or `Negotiate` when the server offers only that.
async fn ntlm_exchange(
    tls: &connection::Tls,
    timeout: Duration,
    request: reqwest::RequestBuilder,
    identity: &sspi::AuthIdentity,
) -> Result<reqwest::Response, CaError> {
    let request = request
        .build()
        .map_err(|e| CaError::Permanent(format!("an ADCS request could not be made ({e})")))?;
    let url = request.url().clone();
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let body = hyper::body::Bytes::copy_from_slice(
        request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default(),
    );
    let leg = |authorization: String| {
        let mut builder = hyper::Request::builder()
            .method(request.method().clone())
            .uri(target.as_str())
            .header(reqwest::header::HOST, host.as_str());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        builder
            .header(reqwest::header::AUTHORIZATION, authorization)
            .body(http_body_util::Full::new(body.clone()))
            .map_err(|e| CaError::Permanent(format!("an ADCS request could not be made ({e})")))
    };
    let failed = |e: ntlm::NtlmError| CaError::Permanent(format!("ADCS login: {e}"));
    let mut connection = connection::Connection::open(&url, tls, timeout).await?;
    let mut scheme = ntlm::Scheme::Ntlm;
    loop {
        // Over TLS the login is bound to this connection (Extended Protection).
        let (initiator, negotiate) =
            ntlm::Initiator::start(identity, connection.channel_binding()).map_err(failed)?;
        let first = connection.send(leg(scheme.header(&negotiate))?).await?;
        if first.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(reqwest::Response::from(first));
        }
        let offers: Vec<(ntlm::Scheme, Vec<u8>)> = first
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(ntlm::Scheme::parse)
            .collect();
        if let Some((scheme, challenge)) = offers.iter().find(|(_, token)| !token.is_empty()) {
            let authenticate = initiator.authenticate(challenge).map_err(failed)?;
            let answer = connection.send(leg(scheme.header(&authenticate))?).await?;
            return Ok(reqwest::Response::from(answer));
        }
        let negotiate_only = offers.iter().any(|(s, _)| *s == ntlm::Scheme::Negotiate)
            && !offers.iter().any(|(s, _)| *s == ntlm::Scheme::Ntlm);
        if scheme == ntlm::Scheme::Ntlm && negotiate_only {
            scheme = ntlm::Scheme::Negotiate;
            continue;
        }
        return Err(CaError::Permanent(if offers.is_empty() {
            "ADCS does not offer Windows authentication (NTLM or Negotiate) on certsrv: \
             enable it in IIS, or set adcs.auth = \"basic\" if Basic is enabled"
                .to_owned()
        } else {
            "ADCS did not answer the NTLM login with a challenge".to_owned()
        }));
    }
}

/// ADCS returns base64 with or without PEM armour; answer PEM.
fn pem_certificate(body: &str) -> String {
    let body = body.trim();
    if body.contains("-----BEGIN CERTIFICATE-----") {
        return format!("{}\n", body.replace("\r\n", "\n"));
    }
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let lines: Vec<String> = base64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The text after "Disposition message:" (next line, after two tabs).
pub(crate) fn disposition(page: &str) -> Option<String> {
    let start = page.find("Disposition message:")? + "Disposition message:".len();
    page[start..]
        .lines()
        .map(|line| strip_tags(line).trim().to_owned())
        .find(|line| !line.is_empty())
}

fn strip_tags(text: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&").replace("&quot;", "\"")
}

fn classify_disposition(ca_request_id: String, message: String) -> Submission {
    if message.contains("Taken Under Submission") {
        Submission::Pending { ca_request_id }
    } else {
        Submission::Denied { message }
    }
}

/// What `certfnsh.asp` answered.
pub(crate) fn classify_submission(page: &str) -> Result<Result<String, Submission>, CaError> {
    // The issued page links the certificate; that link is the one reliable marker.
    if let Some(start) = page.find("certnew.cer?ReqID=") {
        let digits: String = page[start + "certnew.cer?ReqID=".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !digits.is_empty() {
            return Ok(Ok(digits));
        }
    }
    if let Some(start) = page.find("Your Request Id is ") {
        let digits: String = page[start + "Your Request Id is ".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !digits.is_empty() {
            return Ok(Err(Submission::Pending {
                ca_request_id: digits,
            }));
        }
    }
    if let Some(start) = page.find("The disposition message is \"") {
        let rest = &page[start + "The disposition message is \"".len()..];
        let message = rest.split('"').next().unwrap_or_default();
        return Ok(Err(Submission::Denied {
            message: strip_tags(message).trim().to_owned(),
        }));
    }
    if page.contains("Certificate Request Denied") {
        return Ok(Err(Submission::Denied {
            message: "ADCS denied the request without a reason".to_owned(),
        }));
    }
    Err(CaError::Transient(
        "ADCS answered with a page that is not an enrollment result".to_owned(),
    ))
}

impl CertificateAuthority for AdcsClient {
    /// Sends the CSR as it is: certsrv takes names from the CSR, so the issuance saga checks
    /// that its names are the order's before it submits.
    fn submit<'a>(&'a self, order: Order<'a>) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(async move {
            let attributes = format!(
                "CertificateTemplate:{}\r\n",
                self.template(order.certificate_type)
            );
            let form = [
                ("Mode", "newreq"),
                ("CertRequest", order.csr_pem),
                ("CertAttrib", attributes.as_str()),
                ("FriendlyType", "Saved-Request Certificate"),
                ("TargetStoreFlags", "0"),
                ("SaveCert", "yes"),
            ];
            let page = self
                .send(
                    self.http
                        .post(format!("{}/certsrv/certfnsh.asp", self.url))
                        .form(&form),
                )
                .await?;
            match classify_submission(&page.text)? {
                Ok(id) => self.issued(id).await,
                Err(submission) => Ok(submission),
            }
        })
    }

    fn retrieve<'a>(
        &'a self,
        ca_request_id: &'a str,
    ) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(async move { self.issued(ca_request_id.to_owned()).await })
    }

    fn revoke<'a>(
        &'a self,
        certificate: AtCa<'a>,
        reason: RevocationReason,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(async move {
            match &self.revoke_hook {
                Some(hook) => hook.revoke(certificate.serial, reason).await,
                None => Err(CaError::Permanent(
                    "ADCS Web Enrollment cannot revoke and no adcs.revoke_command is set"
                        .to_owned(),
                )),
            }
        })
    }

    fn ca_chain(&self) -> BoxFuture<'_, Result<String, CaError>> {
        Box::pin(self.chain(None))
    }

    fn name(&self) -> String {
        format!("ADCS at {}", self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_as_real_clients_read_them() {
        let issued = "<P> issued <A Href=\"certnew.cer?ReqID=17&amp;Enc=b64\">Download</A>";
        assert_eq!(classify_submission(issued), Ok(Ok("17".to_owned())));
        let pending = "Certificate Pending <P>Your Request Id is 18.";
        assert_eq!(
            classify_submission(pending),
            Ok(Err(Submission::Pending {
                ca_request_id: "18".to_owned()
            }))
        );
        let denied = "Certificate Request Denied <P>The disposition message is \"Denied by Policy Module  0x80094800, nope.\".";
        assert_eq!(
            classify_submission(denied),
            Ok(Err(Submission::Denied {
                message: "Denied by Policy Module  0x80094800, nope.".to_owned()
            }))
        );
        assert!(classify_submission("<html>login</html>").is_err());
        assert_eq!(
            disposition("<P>Disposition message:\r\n\t\tTaken Under Submission\r\n</P>").as_deref(),
            Some("Taken Under Submission")
        );
        assert!(
            pem_certificate("MIIB\r\nAAAA").starts_with("-----BEGIN CERTIFICATE-----\nMIIBAAAA\n")
        );
    }

    #[test]
    fn no_page_a_server_returns_makes_the_certsrv_reader_panic() {
        let issued =
            "<html>Certificate Issued <a href=\"certnew.cer?ReqID=12&amp;Enc=b64\">x</a></html>";
        let pending = "<html>Certificate Pending Your Request Id is 13.</html>";
        let denied = "Disposition message:\r\n\t\tDenied by Policy Module  0x80094800, no.";
        let mut inputs = crate::fuzz::Inputs::new(0x5eed_0003);
        for _ in 0..10_000 {
            for page in [
                inputs.mutate(issued),
                inputs.mutate(pending),
                inputs.mutate(denied),
                inputs.text(16),
            ] {
                let _ = classify_submission(&page);
                let _ = disposition(&page);
            }
        }
    }
}
