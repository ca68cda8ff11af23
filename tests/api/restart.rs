//! PostgreSQL restarting under the service: connections break, the pool makes new ones by
//! itself, a command made while the server is gone fails clearly, and nothing that was
//! acknowledged is lost.

use cert_assistant::commands::Commands;
use cert_assistant::config::Config;
use cert_assistant::db::{self, Database};
use cert_assistant::pki::envelope::KeyEncryptionKey;

use crate::fixtures::{KEK, ctx, web_request};

#[tokio::test]
async fn the_service_reconnects_after_a_postgresql_restart_and_loses_nothing() {
    let root = tempfile::Builder::new()
        .prefix("cert-assistant-restart-")
        .tempdir()
        .expect("tempdir");
    let mut config = Config::load_from(None, Vec::new()).expect("config");
    config.database.url = None;
    config.database.private.data_dir = Some(root.path().to_owned());
    let database = Database::open(&config.database)
        .await
        .expect("private cluster");
    db::migrate(database.pool()).await.expect("migrated");
    let commands = Commands::new(
        database.pool().clone(),
        KeyEncryptionKey::from_base64(KEK).expect("kek"),
        &["root@example.com".to_owned()],
    );
    let john = ctx("john@example.com");
    let before = commands
        .submit_request(&john, web_request("before.example.com"))
        .await
        .expect("acknowledged before the restart");

    let cluster = database.private_cluster().expect("a private cluster");
    cluster.restart().await.expect("restarted");

    // The pool's connections died with the server; the next commands get fresh ones.
    let mut after = None;
    for _ in 0..3 {
        match commands
            .submit_request(&john, web_request("after.example.com"))
            .await
        {
            Ok(submitted) => {
                after = Some(submitted);
                break;
            }
            Err(error) => {
                // At most a clear, retryable failure while connections are replaced.
                assert!(!error.to_string().is_empty());
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    let after = after.expect("the service works again after the restart");
    for number in [&before.request_number, &after.request_number] {
        let view = commands.request(number).await.expect("still there");
        assert_eq!(view.request_number.as_ref(), number.as_ref());
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(database.pool())
        .await
        .expect("count");
    assert!(events >= 4, "both requests' events survive: {events}");
    // Stops the cluster; the directory goes with `root`.
    database.close().await.expect("stopped");
}
