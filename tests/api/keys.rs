//! The key-encryption key is never silently replaced: the service starts only with the key
//! the stored keys are wrapped under, and a generated key file survives a crash.

use std::os::unix::fs::PermissionsExt as _;

use cert_assistant::app::{Application, Outbound};

use crate::helpers::{TestDb, test_config, test_files};

async fn build_error(pool: &sqlx::PgPool, config: &cert_assistant::config::Config) -> String {
    match Application::build(config, pool.clone(), Outbound::default()).await {
        Ok(_) => panic!("the service started"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn the_service_starts_only_with_the_key_its_stored_keys_are_wrapped_under() {
    let db = TestDb::new().await;
    let files = test_files();
    let mut config = test_config(files.path());
    config.keys.encryption_key = None;
    let file = files.path().join("keys").join("key-encryption-key");
    config.keys.encryption_key_file = Some(file.clone());

    // First start: the key file is made, owner-only, in a directory nobody else can list
    // (others may pass through it: the private cluster can live below it), and the embedded
    // CA's key is wrapped under it.
    Application::build(&config, db.pool.clone(), Outbound::default())
        .await
        .expect("the first start");
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().expect("dir")), 0o711);
    let kek_id: String = sqlx::query_scalar("SELECT DISTINCT kek_id FROM data_keys")
        .fetch_one(&db.pool)
        .await
        .expect("a wrapped key");
    let saved = std::fs::read(&file).expect("the key");

    // The file gone (a typo, another HOME): no new key, and the message names the one needed.
    std::fs::remove_file(&file).expect("remove");
    let error = build_error(&db.pool, &config).await;
    assert!(error.contains("is missing"), "{error}");
    assert!(error.contains(&kek_id), "{error}");
    assert!(!file.exists(), "no key was generated in its place");

    // Another key: refused the same way.
    let mut other = config.clone();
    other.keys.encryption_key = Some(crate::fixtures::KEK.to_owned().into());
    let error = build_error(&db.pool, &other).await;
    assert!(
        error.contains(&format!("the database holds keys wrapped under {kek_id}")),
        "{error}"
    );

    // The file back, but readable by others: refused until it is the owner's alone.
    std::fs::write(&file, &saved).expect("restore");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = build_error(&db.pool, &config).await;
    assert!(error.contains("chmod 600"), "{error}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    Application::build(&config, db.pool.clone(), Outbound::default())
        .await
        .expect("the right key, kept private");
}
