//! Downloads: certificate and chain to the owner (counted, audited), the generated private
//! key once to the owner only, nothing to strangers.

use cert_assistant::domain::certificate::Artifact;
use cert_assistant::projections::projector::Projector;

use crate::fixtures::ctx;
use crate::helpers::TestDb;
use crate::saga::{issued, saga};

#[tokio::test]
async fn owners_download_the_certificate_and_their_key_once() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let serial = issued(&db, &s, "download.example.com").await;
    let john = ctx("john@example.com");
    let download = |who, what| {
        let commands = s.commands.clone();
        let serial = serial.clone();
        let store = s.store.clone();
        async move { commands.download(&who, &serial, what, store.as_ref()).await }
    };

    let certificate = download(john.clone(), Artifact::Certificate)
        .await
        .expect("the certificate");
    assert!(certificate.pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        certificate.filename,
        format!("download.example.com-{serial}.pem")
    );
    let chain = download(john.clone(), Artifact::Chain)
        .await
        .expect("chain");
    assert!(chain.pem.contains("BEGIN CERTIFICATE"));

    let stranger = download(ctx("mallory@example.com"), Artifact::Certificate).await;
    assert!(
        stranger.is_err_and(|e| e.to_string().contains("only the owner")),
        "strangers get nothing"
    );
    let theirs = download(ctx("mallory@example.com"), Artifact::PrivateKey).await;
    assert!(theirs.is_err_and(|e| e.to_string().contains("only the owner")));

    let key = download(john.clone(), Artifact::PrivateKey)
        .await
        .expect("the key, once");
    assert!(key.pem.contains("PRIVATE KEY"));
    assert!(
        !format!("{key:?}").contains("PRIVATE KEY"),
        "Debug hides it"
    );
    let again = download(john.clone(), Artifact::PrivateKey).await;
    assert!(
        again.is_err_and(|e| e.to_string().contains("already downloaded")),
        "the key is handed out once"
    );

    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let (count, key_downloaded): (i32, bool) = sqlx::query_as(
        "SELECT c.download_count, k.downloaded FROM certificates c \
               JOIN private_keys k ON k.certificate_id = c.id",
    )
    .fetch_one(&db.pool)
    .await
    .expect("certificate row");
    assert_eq!((count, key_downloaded), (1, true));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE event_type = 'certificate_downloaded'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 3, "certificate, chain and key");
}
