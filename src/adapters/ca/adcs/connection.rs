//! One HTTP/1.1 connection to certsrv, held for one NTLM conversation. NTLM authenticates
//! the connection its messages travel on, so both legs of a login must use the same one; a
//! pooled client cannot promise that (a connection goes back to its pool a moment after its
//! answer is read, and a request sent in that moment opens another). hyper's connection API
//! can: the conversation owns the connection it opened. TLS is rustls with the web's roots
//! and `adcs.ca_bundle`, and the client certificate of `adcs.client_identity`, as for every
//! other ADCS call.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use secrecy::{ExposeSecret as _, SecretString};

use super::super::CaError;

/// How TLS connections to certsrv are made.
#[derive(Debug, Clone)]
pub(super) struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// The web's roots plus `ca_bundle_pem`'s, and the client identity when given.
    pub(super) fn new(
        ca_bundle_pem: Option<&str>,
        client_identity_pem: Option<&SecretString>,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(bundle) = ca_bundle_pem {
            for certificate in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
                roots.add(certificate?)?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
        let config = match client_identity_pem {
            Some(pem) => {
                let pem = pem.expose_secret().as_bytes();
                let chain = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
                let key = PrivateKeyDer::from_pem_slice(pem)?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// An open connection.
#[derive(Debug)]
pub(super) struct Connection {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    timeout: Duration,
    /// Over TLS, the server certificate's `tls-server-end-point` channel binding.
    binding: Option<Vec<u8>>,
}

/// What went wrong on the way, as the saga tells failures apart: all worth retrying.
fn unavailable(what: &str, error: impl std::fmt::Display) -> CaError {
    CaError::Transient(format!("{what} ({error})"))
}

impl Connection {
    /// Connects to `url`'s host (TLS for `https`), within `timeout`.
    pub(super) async fn open(
        url: &url::Url,
        tls: &Tls,
        timeout: Duration,
    ) -> Result<Self, CaError> {
        let host = url
            .host_str()
            .ok_or_else(|| CaError::Permanent("adcs.url has no host".to_owned()))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
                .await
                .map_err(|e| unavailable("cannot connect to ADCS", e))?;
            let (send, binding) = if url.scheme() == "https" {
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| CaError::Permanent(format!("adcs.url's host: {e}")))?;
                let stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unavailable("cannot connect to ADCS", e))?;
                let binding = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|certificate| super::ntlm::tls_server_end_point(certificate));
                (Self::handshake(stream).await?, binding)
            } else {
                (Self::handshake(tcp).await?, None)
            };
            Ok(Self {
                send,
                timeout,
                binding,
            })
        };
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| CaError::Transient("ADCS did not answer in time".to_owned()))?
    }

    async fn handshake<S>(
        stream: S,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, CaError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable("cannot connect to ADCS", e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(send)
    }

    /// The server certificate's channel binding, over TLS.
    pub(super) fn channel_binding(&self) -> Option<&[u8]> {
        self.binding.as_deref()
    }

    /// Sends `request` on this connection and reads the whole answer.
    pub(super) async fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Bytes>, CaError> {
        let exchange = async {
            self.send
                .ready()
                .await
                .map_err(|e| unavailable("ADCS closed the connection", e))?;
            let response = self
                .send
                .send_request(request)
                .await
                .map_err(|e| unavailable("ADCS request failed", e))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| unavailable("reading ADCS's answer", e))?
                .to_bytes();
            Ok(hyper::Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CaError::Transient("ADCS did not answer in time".to_owned()))?
    }
}
