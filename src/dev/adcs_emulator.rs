//! A certsrv (ADCS Web Enrollment) emulator over a throw-away CA: the pages real certsrv
//! clients parse, with Basic auth; templates that issue at once, a template that holds
//! requests until an administrator decides, unknown templates denied, garbage CSRs answered
//! with "Error Parsing Request". Administrative endpoints approve or deny pending requests
//! and make the next submissions fail with 503, for tests of retries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;

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
    requests: Arc<Mutex<BTreeMap<u32, Request>>>,
    next_id: Arc<AtomicU32>,
    fail_next: Arc<AtomicU32>,
    /// SHA-256 (hex) of every CSR accepted for processing, in order: how tests see that
    /// nothing was submitted twice.
    submitted: Arc<Mutex<Vec<String>>>,
}

impl Emulator {
    /// An emulator with a fresh CA, accepting `username` / `password`.
    pub fn new(username: &str, password: &str) -> anyhow::Result<Self> {
        Ok(Self {
            signer: Signer::generate("http://certsrv.invalid/crl")?,
            username: username.to_owned(),
            password: password.to_owned(),
            requests: Arc::default(),
            next_id: Arc::new(AtomicU32::new(100)),
            fail_next: Arc::default(),
            submitted: Arc::default(),
        })
    }

    /// The emulated CA's root certificate, PEM.
    pub fn root_pem(&self) -> &str {
        self.signer.root_pem()
    }

    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/certsrv/certfnsh.asp", post(submit))
            .route("/certsrv/certnew.cer", get(retrieve))
            .route("/certsrv/certcarc.asp", get(renewals))
            .route("/admin/requests/{id}/approve", post(approve))
            .route("/admin/requests/{id}/deny", post(deny))
            .route("/admin/fail-next/{count}", post(fail_next))
            .route("/admin/submissions", get(submissions))
            .with_state(self)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
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
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"certsrv\"")],
        Html("<html><body><h1>401 - Unauthorized: Access is denied due to invalid credentials.</h1></body></html>"),
    )
        .into_response()
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

async fn submit(
    State(emulator): State<Emulator>,
    headers: HeaderMap,
    Form(form): Form<SubmitForm>,
) -> Response {
    if !emulator.authorized(&headers) {
        return unauthorized();
    }
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
async fn submissions(State(emulator): State<Emulator>, headers: HeaderMap) -> Response {
    if !emulator.authorized(&headers) {
        return unauthorized();
    }
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
    headers: HeaderMap,
    Query(query): Query<RetrieveQuery>,
) -> Response {
    if !emulator.authorized(&headers) {
        return unauthorized();
    }
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

async fn renewals(State(emulator): State<Emulator>, headers: HeaderMap) -> Response {
    if !emulator.authorized(&headers) {
        return unauthorized();
    }
    Html("<script>\r\nvar nRenewals=0;\r\n</script>").into_response()
}

async fn approve(
    State(emulator): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<u32>,
) -> Response {
    if !emulator.authorized(&headers) {
        return unauthorized();
    }
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

async fn deny(
    State(emulator): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<u32>,
) -> Response {
    if !emulator.authorized(&headers) {
        return unauthorized();
    }
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

async fn fail_next(
    State(emulator): State<Emulator>,
    headers: HeaderMap,
    Path(count): Path<u32>,
) -> Response {
    if !emulator.authorized(&headers) {
        return unauthorized();
    }
    emulator.fail_next.store(count, Ordering::SeqCst);
    StatusCode::NO_CONTENT.into_response()
}
