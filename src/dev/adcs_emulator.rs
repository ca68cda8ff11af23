//! A certsrv (ADCS Web Enrollment) emulator over a throw-away two-tier CA (a root and the
//! issuing CA it signed): the pages real certsrv clients parse, behind the authentication IIS
//! puts in front of them — Windows authentication (NTLM, offered as `Negotiate` and `NTLM`)
//! and Basic, each of which can be switched off. Templates that issue at once, a template
//! that holds requests until an administrator decides, unknown templates denied, garbage CSRs
//! answered with "Error Parsing Request"; the welcome page, `certcarc.asp` with the CA's
//! renewal count and the chain as PKCS#7 (`certnew.p7b`). Administrative endpoints (always
//! Basic) approve or deny pending requests, make the next submissions fail with 503 for tests
//! of retries, and count failed logins.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;

use crate::adapters::ca::adcs::chain;
use crate::adapters::ca::adcs::ntlm::{self, Accepted, Acceptor, Scheme};
use crate::adapters::ca::embedded::{Names, Signer};
use crate::domain::values::CertificateType;

/// The template that holds requests for an administrator.
pub const PENDING_TEMPLATE: &str = "ManualApproval";

/// A template that issues at once with an empty subject (subject name format "None"), as
/// ADCS administrators configure for devices: what it issues is not what was approved.
pub const NO_SUBJECT_TEMPLATE: &str = "SubjectNone";

/// Templates that issue at once, and what they issue.
const TEMPLATES: &[(&str, CertificateType)] = &[
    ("WebServer", CertificateType::WebServer),
    ("User", CertificateType::UserAuth),
    ("CodeSigning", CertificateType::CodeSigning),
    ("EmailProtection", CertificateType::Email),
    ("Machine", CertificateType::Other),
    (NO_SUBJECT_TEMPLATE, CertificateType::WebServer),
];

#[derive(Debug, Clone)]
enum Request {
    Pending { csr: String },
    Issued { certificate_pem: String },
    Denied { message: String },
}

/// The emulator's state.
#[derive(Debug, Clone)]
pub struct Emulator {
    signer: Signer,
    username: String,
    password: String,
    identity: Arc<sspi::AuthIdentity>,
    /// Whether certsrv takes Basic, and Windows authentication.
    basic: bool,
    windows: bool,
    /// How often the CA certificate was renewed (what `certcarc.asp` says).
    renewals: u32,
    /// Extended Protection "Required": over TLS, an NTLM login must carry the connection's
    /// channel binding (otherwise "Accept": checked when sent).
    binding_required: bool,
    /// NTLM conversations waiting for their AUTHENTICATE message, by connection.
    conversations: Arc<Mutex<HashMap<SocketAddr, Acceptor>>>,
    failed_logins: Arc<AtomicU32>,
    requests: Arc<Mutex<BTreeMap<u32, Request>>>,
    next_id: Arc<AtomicU32>,
    fail_next: Arc<AtomicU32>,
    /// SHA-256 (hex) of every CSR accepted for processing, in order: how tests see that
    /// nothing was submitted twice.
    submitted: Arc<Mutex<Vec<String>>>,
}

/// Which logins certsrv takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Logins {
    /// Windows authentication (NTLM) and Basic.
    #[default]
    Both,
    /// Windows authentication only, as ADCS is installed.
    Windows,
    /// Basic only.
    Basic,
}

impl Emulator {
    /// An emulator with a fresh CA, accepting `username` / `password` (`DOMAIN\\user` or
    /// `user@domain`) with Windows authentication and Basic.
    pub fn new(username: &str, password: &str) -> anyhow::Result<Self> {
        Ok(Self {
            signer: Signer::generate("http://certsrv.invalid/crl")?,
            username: username.to_owned(),
            password: password.to_owned(),
            identity: Arc::new(ntlm::identity(username, &password.to_owned().into())?),
            basic: true,
            windows: true,
            renewals: 0,
            binding_required: false,
            conversations: Arc::default(),
            failed_logins: Arc::default(),
            requests: Arc::default(),
            next_id: Arc::new(AtomicU32::new(100)),
            fail_next: Arc::default(),
            submitted: Arc::default(),
        })
    }

    /// Takes only these logins on certsrv's pages.
    pub fn with_logins(mut self, logins: Logins) -> Self {
        (self.windows, self.basic) = match logins {
            Logins::Both => (true, true),
            Logins::Windows => (true, false),
            Logins::Basic => (false, true),
        };
        self
    }

    /// Says the CA certificate was renewed `renewals` times: the chain is served only for
    /// that renewal number, as a client that ignores `certcarc.asp` would find out.
    pub fn with_renewals(mut self, renewals: u32) -> Self {
        self.renewals = renewals;
        self
    }

    /// Requires NTLM logins over TLS to be bound to their connection, as IIS does with
    /// Extended Protection for Authentication set to "Required" (Microsoft's advice for
    /// Web Enrollment since KB5005413).
    pub fn with_extended_protection_required(mut self) -> Self {
        self.binding_required = true;
        self
    }

    /// The emulated PKI's root certificate, PEM.
    pub fn root_pem(&self) -> &str {
        self.signer.root_pem()
    }

    /// The routes. Serve them with [`Emulator::serve`]: Windows authentication needs to know
    /// which connection a message came on.
    pub fn router(self) -> Router {
        let certsrv = Router::new()
            .route("/certsrv/", get(welcome))
            .route("/certsrv", get(welcome))
            .route("/certsrv/certfnsh.asp", post(submit))
            .route("/certsrv/certnew.cer", get(retrieve))
            .route("/certsrv/certnew.p7b", get(chain_p7b))
            .route("/certsrv/certcarc.asp", get(renewals))
            .layer(axum::middleware::from_fn_with_state(self.clone(), login));
        let admin = Router::new()
            .route("/admin/requests/{id}/approve", post(approve))
            .route("/admin/requests/{id}/deny", post(deny))
            .route("/admin/fail-next/{count}", post(fail_next))
            .route("/admin/submissions", get(submissions))
            .route("/admin/failed-logins", get(failed_logins))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                admin_login,
            ));
        certsrv.merge(admin).with_state(self)
    }

    /// Serves the routes on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            listener,
            self.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }

    /// Serves the routes over TLS (`certificate_pem` and `key_pem` are the server's) on
    /// `listener` until `shutdown` completes, as certsrv is served in production.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        certificate_pem: &str,
        key_pem: &str,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
        let binding = ChannelBinding(Arc::new(
            chain
                .first()
                .map(|certificate| ntlm::tls_server_end_point(certificate))
                .unwrap_or_default(),
        ));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let router = self.router();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut shutdown => return Ok(()),
            };
            let acceptor = acceptor.clone();
            // Each connection knows its peer, as `serve` tells the routes.
            let service = hyper_util::service::TowerToHyperService::new(
                router
                    .clone()
                    .layer(axum::extract::connect_info::MockConnectInfo(peer))
                    .layer(axum::Extension(binding.clone())),
            );
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    }

    fn basic_matches(&self, headers: &HeaderMap) -> bool {
        let expected = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password));
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .is_some_and(|given| given.trim() == expected)
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Request>> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn conversations(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Acceptor>> {
        self.conversations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A 401 offering the logins certsrv takes (one header each, as IIS sends them).
    fn unauthorized(&self) -> Response {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Html("<html><body><h1>401 - Unauthorized: Access is denied due to invalid credentials.</h1></body></html>"),
        )
            .into_response();
        let offers = response.headers_mut();
        if self.windows {
            offers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Negotiate"),
            );
            offers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("NTLM"));
        }
        if self.basic {
            offers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"certsrv\""),
            );
        }
        response
    }

    fn refused(&self) -> Response {
        self.failed_logins.fetch_add(1, Ordering::SeqCst);
        self.unauthorized()
    }

    /// What stops a request on connection `peer` with these headers, if anything: a 401
    /// (with a challenge, mid-way through an NTLM login). `None` lets it through.
    fn authenticate(
        &self,
        peer: SocketAddr,
        binding: Option<&ChannelBinding>,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Some(self.unauthorized());
        };
        if given.starts_with("Basic ") {
            // With Basic off, IIS does not even try the credentials.
            return match (self.basic, self.basic_matches(headers)) {
                (false, _) => Some(self.unauthorized()),
                (true, true) => None,
                (true, false) => Some(self.refused()),
            };
        }
        let Some((scheme, message)) = Scheme::parse(given).filter(|_| self.windows) else {
            return Some(self.unauthorized());
        };
        // A NEGOTIATE message (type 1) starts a conversation on this connection; the
        // AUTHENTICATE message (type 3) must come on the connection that got the challenge.
        let acceptor = match message.get(8) {
            Some(1) => match Acceptor::new(&self.identity) {
                Ok(acceptor) => match binding {
                    Some(binding) => {
                        acceptor.with_channel_binding(&binding.0, self.binding_required)
                    }
                    None => acceptor,
                },
                Err(_) => return Some(self.unauthorized()),
            },
            Some(3) => match self.conversations().remove(&peer) {
                Some(acceptor) => acceptor,
                None => return Some(self.refused()),
            },
            _ => return Some(self.refused()),
        };
        match acceptor.accept(&message) {
            Ok(Accepted::Challenge(acceptor, challenge)) => {
                let Ok(offer) = HeaderValue::from_str(&scheme.header(&challenge)) else {
                    return Some(self.unauthorized());
                };
                let mut conversations = self.conversations();
                // Logins abandoned half-way do not pile up.
                if conversations.len() >= 1024 {
                    conversations.clear();
                }
                conversations.insert(peer, *acceptor);
                drop(conversations);
                let mut response = self.unauthorized();
                let offers = response.headers_mut();
                offers.remove(header::WWW_AUTHENTICATE);
                offers.insert(header::WWW_AUTHENTICATE, offer);
                Some(response)
            }
            Ok(Accepted::LoggedIn) => None,
            Err(_) => Some(self.refused()),
        }
    }
}

/// certsrv's pages take the logins the emulator was told to take.
/// A TLS connection's `tls-server-end-point` channel binding.
#[derive(Debug, Clone)]
struct ChannelBinding(Arc<Vec<u8>>);

async fn login(
    State(emulator): State<Emulator>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    binding: Option<axum::Extension<ChannelBinding>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let binding = binding.map(|axum::Extension(binding)| binding);
    match emulator.authenticate(peer, binding.as_ref(), request.headers()) {
        None => next.run(request).await,
        Some(answer) => answer,
    }
}

/// The emulator's own endpoints take Basic, whatever certsrv takes.
async fn admin_login(
    State(emulator): State<Emulator>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if emulator.basic_matches(request.headers()) {
        next.run(request).await
    } else {
        emulator.unauthorized()
    }
}

fn page(title: &str, body: &str) -> Response {
    Html(format!(
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">\r\n\
         <Title>Microsoft Active Directory Certificate Services</Title></Head>\r\n\
         <Body BgColor=#FFFFFF><Font ID=locPageTitle>{title}</Font><P>\r\n{body}\r\n</Body></HTML>\r\n"
    ))
    .into_response()
}

fn issued_page(id: u32) -> Response {
    page(
        "Certificate Issued",
        &format!(
            "<P ID=locInfoReqIDAndDisp> The certificate you requested was issued to you.\r\n\
             <A Href=\"certnew.cer?ReqID={id}&amp;Enc=b64\">Download certificate</A>"
        ),
    )
}

fn pending_page(id: u32) -> Response {
    page(
        "Certificate Pending",
        &format!(
            "<P>Your certificate request has been received. However, you must wait for an \
             administrator to issue the certificate you requested.\r\n\
             <P>Your Request Id is {id}."
        ),
    )
}

fn denied_page(message: &str) -> Response {
    page(
        "Certificate Request Denied",
        &format!(
            "<P ID=locDenied>Your certificate request was denied.\r\n\
             <P>Contact your administrator for further information.\r\n\
             <P>The disposition message is \"{message}\"."
        ),
    )
}

fn disposition_page(message: &str) -> Response {
    page(
        "Certificate Request",
        &format!("<P>Disposition message:\r\n\t\t{message}\r\n"),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubmitForm {
    mode: Option<String>,
    cert_request: Option<String>,
    cert_attrib: Option<String>,
}

async fn submit(State(emulator): State<Emulator>, Form(form): Form<SubmitForm>) -> Response {
    if emulator
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    if form.mode.as_deref() != Some("newreq") {
        return (StatusCode::BAD_REQUEST, "Mode must be newreq").into_response();
    }
    let id = emulator.next_id.fetch_add(1, Ordering::SeqCst);
    let csr = form.cert_request.unwrap_or_default();
    {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(csr.trim().as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        emulator
            .submitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(hex);
    }
    let template = form
        .cert_attrib
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("CertificateTemplate:")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let request = if template == PENDING_TEMPLATE {
        if x509_parser::pem::parse_x509_pem(csr.as_bytes()).is_err() {
            Request::Denied {
                message: "Error Parsing Request  ASN1 bad tag value met. 0x8009310b".to_owned(),
            }
        } else {
            Request::Pending { csr }
        }
    } else if let Some((_, kind)) = TEMPLATES.iter().find(|(name, _)| *name == template) {
        let names = if template == NO_SUBJECT_TEMPLATE {
            Names::WithoutSubject
        } else {
            Names::AsInCsr
        };
        match emulator.signer.issue(&csr, names, *kind, 365) {
            Ok((_, certificate_pem)) => Request::Issued { certificate_pem },
            Err(error) => Request::Denied {
                message: format!("Error Parsing Request  {error}. 0x80094801"),
            },
        }
    } else {
        Request::Denied {
            message: format!(
                "Denied by Policy Module  0x80094800, The request was for a certificate \
                 template that is not supported by the Active Directory Certificate Services \
                 policy: {template}."
            ),
        }
    };
    let response = match &request {
        Request::Issued { .. } => issued_page(id),
        Request::Pending { .. } => pending_page(id),
        Request::Denied { message } => denied_page(message),
    };
    emulator.requests().insert(id, request);
    response
}

/// `GET /admin/submissions`: the CSR hashes of every accepted submission.
async fn submissions(State(emulator): State<Emulator>) -> Response {
    let submitted = emulator
        .submitted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    axum::Json(submitted).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetrieveQuery {
    #[serde(rename = "ReqID")]
    req_id: String,
}

async fn retrieve(
    State(emulator): State<Emulator>,
    Query(query): Query<RetrieveQuery>,
) -> Response {
    let certificate =
        |pem: String| ([(header::CONTENT_TYPE, "application/pkix-cert")], pem).into_response();
    if query.req_id == "CACert" {
        return certificate(emulator.signer.issuing_pem().to_owned());
    }
    let request = query
        .req_id
        .parse::<u32>()
        .ok()
        .and_then(|id| emulator.requests().get(&id).cloned());
    match request {
        Some(Request::Issued { certificate_pem }) => certificate(certificate_pem),
        Some(Request::Pending { .. }) => disposition_page("Taken Under Submission"),
        Some(Request::Denied { message }) => disposition_page(&message),
        None => disposition_page("The requested property value is empty. 0x80094004"),
    }
}

async fn renewals(State(emulator): State<Emulator>) -> Response {
    Html(format!(
        "<script>\r\nvar nRenewals={};\r\n</script>",
        emulator.renewals
    ))
    .into_response()
}

/// The welcome page clients fetch to check their credentials.
async fn welcome() -> Response {
    page(
        "Welcome",
        "<P>Use this Web site to request a certificate for your Web browser, e-mail client, or \
         other program.\r\n<P><A Href=\"/certsrv/certrqus.asp\">Request a certificate</A>",
    )
}

#[derive(Debug, Deserialize)]
struct ChainQuery {
    #[serde(rename = "ReqID")]
    req_id: String,
    #[serde(rename = "Renewal", default)]
    renewal: Option<u32>,
}

/// `certnew.p7b?ReqID=CACert&Renewal=N&Enc=b64`: the issuing CA and the root as PKCS#7 in
/// base64, inside "CERTIFICATE" armour as certsrv writes it; only for the current renewal.
async fn chain_p7b(State(emulator): State<Emulator>, Query(query): Query<ChainQuery>) -> Response {
    if query.req_id != "CACert" || query.renewal.unwrap_or(0) != emulator.renewals {
        return disposition_page("The requested property value is empty. 0x80094004");
    }
    let der = |pem: &str| {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map(|(_, pem)| pem.contents)
            .unwrap_or_default()
    };
    let certificates = [
        der(emulator.signer.issuing_pem()),
        der(emulator.signer.root_pem()),
    ];
    match chain::pkcs7(&certificates) {
        Ok(pkcs7) => (
            [(header::CONTENT_TYPE, "application/x-pkcs7-certificates")],
            chain::pem(&pkcs7).replace('\n', "\r\n"),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// `GET /admin/failed-logins`: how many logins certsrv refused.
async fn failed_logins(State(emulator): State<Emulator>) -> Response {
    axum::Json(emulator.failed_logins.load(Ordering::SeqCst)).into_response()
}

async fn approve(State(emulator): State<Emulator>, Path(id): Path<u32>) -> Response {
    let csr = match emulator.requests().get(&id) {
        Some(Request::Pending { csr }) => csr.clone(),
        _ => return (StatusCode::CONFLICT, "not pending").into_response(),
    };
    let decided = match emulator
        .signer
        .issue(&csr, Names::AsInCsr, CertificateType::WebServer, 365)
    {
        Ok((_, certificate_pem)) => Request::Issued { certificate_pem },
        Err(error) => Request::Denied {
            message: format!("Error Parsing Request  {error}"),
        },
    };
    emulator.requests().insert(id, decided);
    StatusCode::NO_CONTENT.into_response()
}

async fn deny(State(emulator): State<Emulator>, Path(id): Path<u32>) -> Response {
    let mut requests = emulator.requests();
    match requests.get(&id) {
        Some(Request::Pending { .. }) => {
            requests.insert(
                id,
                Request::Denied {
                    message: "Denied by Officer. 0x80094012".to_owned(),
                },
            );
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (StatusCode::CONFLICT, "not pending").into_response(),
    }
}

async fn fail_next(State(emulator): State<Emulator>, Path(count): Path<u32>) -> Response {
    emulator.fail_next.store(count, Ordering::SeqCst);
    StatusCode::NO_CONTENT.into_response()
}
