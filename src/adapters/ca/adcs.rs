//! ADCS Web Enrollment (certsrv) client: submits CSRs through `certfnsh.asp`, fetches
//! certificates through `certnew.cer`, and reads the pages the way real certsrv clients do:
//! by Content-Type first (localized servers change the English strings), then the page text.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::revoke_hook::RevokeHook;
use super::{AtCa, CaError, CertificateAuthority, Order, Submission};
use crate::domain::values::{CertificateType, RevocationReason};
use crate::ports::BoxFuture;

/// How to reach and log in to the CA.
#[derive(Debug, Clone)]
pub struct AdcsSettings {
    /// `https://adcs.example.com` (the server, without `/certsrv`).
    pub url: String,
    /// Basic auth user (`DOMAIN\\user` works).
    pub username: String,
    /// Basic auth password.
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

/// The client.
#[derive(Debug, Clone)]
pub struct AdcsClient {
    http: reqwest::Client,
    url: String,
    username: String,
    password: SecretString,
    templates: BTreeMap<String, String>,
    revoke_hook: Option<RevokeHook>,
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
        Ok(Self {
            http: builder.build()?,
            url: settings.url.trim_end_matches('/').to_owned(),
            username: settings.username,
            password: settings.password,
            templates: settings.templates,
            revoke_hook: settings.revoke_hook,
        })
    }

    fn template(&self, kind: CertificateType) -> String {
        self.templates
            .get(kind.as_str())
            .cloned()
            .unwrap_or_else(|| default_template(kind).to_owned())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CaError> {
        let response = request
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    CaError::Transient("ADCS did not answer in time".to_owned())
                } else if e.is_connect() {
                    CaError::Transient("cannot connect to ADCS".to_owned())
                } else {
                    CaError::Transient(format!("ADCS request failed: {e}"))
                }
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(CaError::Permanent(
                "ADCS refused the credentials (check adcs.username and adcs.password)".to_owned(),
            ));
        }
        if status.is_server_error() {
            return Err(CaError::Transient(format!("ADCS answered {status}")));
        }
        if !status.is_success() {
            return Err(CaError::Permanent(format!("ADCS answered {status}")));
        }
        Ok(response)
    }

    /// `certnew.cer?ReqID=…&Enc=b64`: the certificate when the Content-Type says so,
    /// otherwise the disposition on the page.
    async fn certificate(&self, req_id: &str) -> Result<Result<String, String>, CaError> {
        let response = self
            .send(
                self.http
                    .get(format!("{}/certsrv/certnew.cer", self.url))
                    .query(&[("ReqID", req_id), ("Enc", "b64")]),
            )
            .await?;
        let is_certificate = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "application/pkix-cert");
        let body = response
            .text()
            .await
            .map_err(|e| CaError::Transient(format!("reading ADCS's answer: {e}")))?;
        if is_certificate {
            return Ok(Ok(pem_certificate(&body)));
        }
        Ok(Err(disposition(&body).unwrap_or_else(|| {
            "no disposition on the page".to_owned()
        })))
    }

    async fn issued(&self, ca_request_id: String) -> Result<Submission, CaError> {
        let certificate_pem = match self.certificate(&ca_request_id).await? {
            Ok(pem) => pem,
            Err(message) => return Ok(classify_disposition(ca_request_id, message)),
        };
        // The issuing CA's certificate; an ADCS without it still issued the certificate.
        let chain_pem: String = self.certificate("CACert").await?.unwrap_or_default();
        Ok(Submission::Issued {
            ca_request_id,
            certificate_pem,
            chain_pem,
            private_key: None,
        })
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
            let response = self
                .send(
                    self.http
                        .post(format!("{}/certsrv/certfnsh.asp", self.url))
                        .form(&form),
                )
                .await?;
            let page = response
                .text()
                .await
                .map_err(|e| CaError::Transient(format!("reading ADCS's answer: {e}")))?;
            match classify_submission(&page)? {
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
        Box::pin(async move {
            // certcarc.asp says how often the CA certificate was renewed; the current one is
            // CACert with that renewal number.
            let page = self
                .send(self.http.get(format!("{}/certsrv/certcarc.asp", self.url)))
                .await?
                .text()
                .await
                .map_err(|e| CaError::Transient(format!("reading ADCS's answer: {e}")))?;
            let renewals: String = page
                .split("var nRenewals=")
                .nth(1)
                .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
                .unwrap_or_else(|| "0".to_owned());
            let response = self
                .send(
                    self.http
                        .get(format!("{}/certsrv/certnew.cer", self.url))
                        .query(&[
                            ("ReqID", "CACert"),
                            ("Enc", "b64"),
                            ("Renewal", renewals.as_str()),
                        ]),
                )
                .await?;
            let body = response
                .text()
                .await
                .map_err(|e| CaError::Transient(format!("reading ADCS's answer: {e}")))?;
            Ok(pem_certificate(&body))
        })
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
