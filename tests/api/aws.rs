//! S3 and SES through the real AWS SDKs, over HTTP: S3 against an S3-compatible server
//! in-process (s3s over a temporary directory), SES against moto's server.

use std::time::Duration;

use aws_sdk_s3::config::Credentials;
use cert_assistant::adapters::artifacts::ArtifactStore;
use cert_assistant::adapters::mail::{Mail, MailError, Mailer, SesMailer};
use cert_assistant::adapters::s3::{S3ArtifactStore, S3Settings};

const ACCESS_KEY: &str = "AKIATESTTESTTEST";
const SECRET_KEY: &str = "test-secret-key-test-secret-key-0000";

/// Serves S3 from a temporary directory; returns the endpoint.
async fn s3_server(root: &std::path::Path) -> String {
    std::fs::create_dir_all(root.join("certs")).expect("bucket dir");
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    endpoint
}

fn s3_store(endpoint: &str) -> S3ArtifactStore {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    S3ArtifactStore::from_client(
        aws_sdk_s3::Client::from_conf(config),
        S3Settings {
            bucket: "certs".to_owned(),
            force_path_style: true,
            ..S3Settings::default()
        },
    )
}

#[tokio::test]
async fn artifacts_round_trip_through_s3_and_are_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = s3_store(&s3_server(dir.path()).await);
    store
        .put(
            "certificates/REQ-20261127-00001/0A.pem",
            b"-----BEGIN CERTIFICATE-----\n".to_vec(),
        )
        .await
        .expect("put");
    assert_eq!(
        store
            .get("certificates/REQ-20261127-00001/0A.pem")
            .await
            .expect("get"),
        b"-----BEGIN CERTIFICATE-----\n"
    );
    assert!(
        store
            .put("certificates/REQ-20261127-00001/0A.pem", b"other".to_vec())
            .await
            .is_err()
    );
    assert!(store.get("certificates/missing.pem").await.is_err());
    assert_eq!(store.location(), "s3://certs");
    assert_eq!(store.bucket(), "certs");
    // It really is on the server's disk.
    assert!(
        dir.path()
            .join("certs/certificates/REQ-20261127-00001/0A.pem")
            .exists()
    );
}

/// moto's server, stopped when dropped.
pub(crate) struct Moto {
    child: std::process::Child,
    pub(crate) endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    moto_with(&[]).await
}

/// moto's server with `env` (e.g. how long ACM takes to validate), with the ACM behaviours
/// moto lacks (revocation, managed renewal, validation timeouts) added by `moto_server.py`.
pub(crate) async fn moto_with(env: &[(&str, &str)]) -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/moto_server.py");
    let mut child = std::process::Command::new("python3")
        .args([script, "-H", "127.0.0.1", "-p", &port.to_string()])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs moto's server (pip install 'moto[server]'; .ci/run installs it)");
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{endpoint}/moto-api/")).await.is_ok() {
            return Moto { child, endpoint };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("moto_server did not start");
}

fn ses_client(endpoint: &str) -> aws_sdk_ses::Client {
    aws_sdk_ses::Client::from_conf(
        aws_sdk_ses::Config::builder()
            .behavior_version_latest()
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .region(aws_sdk_ses::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .build(),
    )
}

fn mail(from: &str) -> Mail {
    Mail {
        from: from.to_owned(),
        to: "john@example.com".to_owned(),
        subject: "REQ-20261127-00001 is issued".to_owned(),
        text: "Your certificate is ready.".to_owned(),
        html: "<p>Your certificate is ready.</p>".to_owned(),
    }
}

#[tokio::test]
async fn mail_goes_out_through_ses_and_an_unverified_sender_is_refused_for_good() {
    let moto = moto().await;
    let client = ses_client(&moto.endpoint);
    client
        .verify_email_identity()
        .email_address("cert-assistant@example.com")
        .send()
        .await
        .expect("verify the sender");
    let mailer = SesMailer::from_client(client);
    let id = mailer
        .send(&mail("cert-assistant@example.com"))
        .await
        .expect("sent");
    assert!(!id.is_empty());
    let refused = mailer.send(&mail("stranger@example.org")).await;
    assert!(
        matches!(refused, Err(MailError::Permanent(_))),
        "{refused:?}"
    );
    let stats = moto_sent(&moto.endpoint).await;
    assert_eq!(stats, 1, "exactly one message left SES");
}

/// Messages moto's SES accepted.
async fn moto_sent(endpoint: &str) -> usize {
    let answer: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto state")
        .json()
        .await
        .expect("json");
    answer["ses"]["Message"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|m| m["subject"] == "REQ-20261127-00001 is issued")
                .count()
        })
        .unwrap_or(usize::MAX)
}
