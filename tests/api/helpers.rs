//! The test harness: a fresh, migrated database per test, and the service on port 0.
//!
//! Databases live on the server of `DATABASE_URL` when it is set; otherwise on one private
//! cluster started once per test run (in a temporary directory, fsync off) and removed when
//! the test process exits. Each test's database is a copy of a migrated template, which is
//! much faster than migrating every time.

use std::future::Future;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use cert_assistant::app::{Application, Outbound, Workers};
use cert_assistant::config::Config;
use cert_assistant::db::private_cluster::{PrivateCluster, PrivateClusterOptions};
use cert_assistant::db::{MIGRATOR, quote_identifier};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Test databases older than this, left by earlier runs on an external server, are dropped.
const STALE_AFTER_SECS: u64 = 2 * 60 * 60;
const TEST_DB_PREFIX: &str = "ca_t_";

/// The server every test of this run uses.
struct TestServer {
    /// Options for the server's maintenance database; `.database(name)` for any other.
    admin: PgConnectOptions,
    /// The migrated template database.
    template: String,
    /// The private cluster's socket directory, when we run one (for URLs handed to the CLI).
    socket_dir: Option<std::path::PathBuf>,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();

fn server() -> &'static TestServer {
    SERVER.get_or_init(|| {
        // Each #[tokio::test] has its own runtime; set up on a runtime of our own so nothing
        // created here is tied to the first test's runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the test harness")
                .block_on(set_up_server())
        })
        .join()
        .expect("test harness set-up panicked")
    })
}

async fn set_up_server() -> TestServer {
    let (admin, socket_dir) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a valid URL");
            drop_stale_databases(&admin).await;
            (admin, None)
        }
        _ => {
            let root = tempfile::Builder::new()
                .prefix("cert-assistant-test-")
                .tempdir()
                .expect("a temporary directory for the test cluster")
                .keep();
            let cluster = PrivateCluster::start(&PrivateClusterOptions {
                root,
                bin_dir: None,
                run_as_user: "postgres".to_owned(),
                durable: false,
            })
            .await
            .expect("the private test cluster starts");
            cluster
                .remove_when_process_exits(std::process::id())
                .expect("the cluster cleanup watcher starts");
            let socket_dir = cluster.socket_dir();
            (cluster.connect_options("postgres"), Some(socket_dir))
        }
    };
    let template = ensure_template(&admin).await;
    TestServer {
        admin,
        template,
        socket_dir,
    }
}

/// The template's name changes whenever a migration does, so a stale template is never used.
fn template_name() -> String {
    let mut hasher = Sha256::new();
    for migration in MIGRATOR.iter() {
        hasher.update(migration.version.to_be_bytes());
        hasher.update(&migration.checksum);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("ca_tpl_{hex}")
}

async fn ensure_template(admin: &PgConnectOptions) -> String {
    let name = template_name();
    let mut conn = admin.connect().await.expect("connect to the test server");
    // Parallel test runs against one server: one builds the template, the others wait.
    sqlx::query("SELECT pg_advisory_lock(hashtext('cert-assistant test template'))")
        .execute(&mut conn)
        .await
        .expect("template lock");
    let ready: Option<bool> =
        sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_optional(&mut conn)
            .await
            .expect("look up the template");
    if ready != Some(true) {
        let quoted = quote_identifier(&name);
        if ready == Some(false) {
            // A run that died half-way left it behind.
            sqlx::query(&format!("DROP DATABASE {quoted} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .expect("drop a half-built template");
        }
        sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut conn)
            .await
            .expect("create the template");
        let mut template = admin
            .clone()
            .database(&name)
            .connect()
            .await
            .expect("connect to the template");
        MIGRATOR
            .run(&mut template)
            .await
            .expect("migrations apply to an empty database");
        template.close().await.expect("close the template");
        // Marked last: a template is only used once fully migrated.
        sqlx::query(&format!("ALTER DATABASE {quoted} IS_TEMPLATE true"))
            .execute(&mut conn)
            .await
            .expect("mark the template");
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtext('cert-assistant test template'))")
        .execute(&mut conn)
        .await
        .expect("template unlock");
    conn.close().await.ok();
    name
}

async fn drop_stale_databases(admin: &PgConnectOptions) {
    let Ok(mut conn) = admin.connect().await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'ca\\_t\\_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    let now = unix_now();
    for name in names {
        let created = name
            .strip_prefix(TEST_DB_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| now.saturating_sub(created) > STALE_AFTER_SECS) {
            let drop = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_identifier(&name)
            );
            sqlx::query(&drop).execute(&mut conn).await.ok();
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh database of its own, migrated, for one test.
pub struct TestDb {
    /// A pool on it.
    pub pool: PgPool,
    /// Its name.
    pub name: String,
}

impl TestDb {
    /// Copies the migrated template into a new database.
    pub async fn new() -> Self {
        let name = Self::create_from(Some(&server().template)).await;
        let options = server().admin.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        Self { pool, name }
    }

    /// A new empty database (no migrations), for testing the migrate command.
    pub async fn empty() -> (String, PgConnectOptions) {
        let name = Self::create_from(None).await;
        (name.clone(), server().admin.clone().database(&name))
    }

    async fn create_from(template: Option<&str>) -> String {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{TEST_DB_PREFIX}{}_{}", unix_now(), &suffix[..12]);
        let mut sql = format!("CREATE DATABASE {}", quote_identifier(&name));
        if let Some(template) = template {
            sql.push_str(&format!(" TEMPLATE {}", quote_identifier(template)));
        }
        let mut conn = server()
            .admin
            .connect()
            .await
            .expect("connect to the test server");
        sqlx::query(&sql)
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.ok();
        name
    }
}

impl TestDb {
    /// A `postgres://` URL of this database, for child processes.
    pub fn url(&self) -> String {
        database_url(&self.name)
    }
}

/// A `postgres://` URL of database `name` on the test server.
pub fn database_url(name: &str) -> String {
    if let Some(socket_dir) = &server().socket_dir {
        return format!(
            "postgres://postgres@localhost:5432/{name}?host={}",
            socket_dir.display()
        );
    }
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL is set");
    let mut parsed = url::Url::parse(&url).expect("DATABASE_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// The service, running on a free port against its own fresh database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Its database.
    #[expect(dead_code, reason = "used by the domain and chat tests to come")]
    pub db: TestDb,
    /// An HTTP client.
    pub http: reqwest::Client,
    _files: tempfile::TempDir,
}

impl TestApp {
    /// GET `path` on the service.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the request reaches the service")
    }
}

/// The configuration every test starts from, as a new user's defaults but: port 0, the
/// fixtures' key-encryption key and admin, and mail and artifacts under `files`. Tests then
/// point the configuration at their own local servers (Slack, Teams, Discord, ADCS, ...).
pub fn test_config(files: &std::path::Path) -> Config {
    let mut config = Config::load_from(None, Vec::new()).expect("default configuration");
    config.http.listen = "127.0.0.1:0".to_owned();
    config.keys.encryption_key = Some(crate::fixtures::KEK.to_owned().into());
    config.auth.admins = vec!["root@example.com".to_owned()];
    config.storage.local_dir = Some(files.join("artifacts"));
    config.mail.local_dir = Some(files.join("mail"));
    config
}

/// A temporary directory for a test's files (mail, artifacts).
pub fn test_files() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cert-assistant-files-")
        .tempdir()
        .expect("a temporary directory")
}

/// Who runs the service's background: the test, step by step, or the service itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Only the routes run; the test steps the workers it is handed.
    Stepped,
    /// Every feed consumer and worker runs too, exactly as under `cert-assistant serve`.
    Running,
}

/// Builds the service from `config` over `pool` through the composition root `serve` uses
/// and starts it in the background; returns its base URL and its background parts.
pub async fn start(pool: &PgPool, config: &Config, background: Background) -> (String, Workers) {
    start_with(pool, config, background, Outbound::default()).await
}

/// [`start`] with `outbound` swapped in (a clock, AWS credentials).
pub async fn start_with(
    pool: &PgPool,
    config: &Config,
    background: Background,
    outbound: Outbound,
) -> (String, Workers) {
    let application = Application::build(config, pool.clone(), outbound)
        .await
        .expect("the service builds");
    let address = format!("http://{}", application.local_addr());
    let workers = application.workers().clone();
    match background {
        Background::Stepped => {
            tokio::spawn(application.serve_until(std::future::pending()));
        }
        Background::Running => {
            tokio::spawn(application.run_until(std::future::pending()));
        }
    }
    (address, workers)
}

/// [`start`] with the background stepped by the test.
pub async fn serve(pool: &PgPool, config: &Config) -> (String, Workers) {
    start(pool, config, Background::Stepped).await
}

/// Starts the whole service in the background on port 0.
pub async fn spawn_app() -> TestApp {
    let db = TestDb::new().await;
    let files = test_files();
    let (address, _) = start(&db.pool, &test_config(files.path()), Background::Running).await;
    TestApp {
        address,
        db,
        http: reqwest::Client::new(),
        _files: files,
    }
}

/// Waits up to `within` for `check` to hold, polling; panics with `what` otherwise.
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the running service's read model knows `email` as an approver (the people
/// asked at submission come from there).
pub async fn until_known_as_approver(pool: &PgPool, email: &str) {
    eventually(
        &format!("the read model knows {email} as an approver"),
        std::time::Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1 AND role = 'approver')",
            )
            .bind(email)
            .fetch_one(pool)
            .await
            .expect("users")
        },
    )
    .await;
}

/// Brings the read model up to date.
/// Runs a command (the CLI, openssl) to its end without blocking the test's runtime: a
/// blocked current-thread runtime cannot return its connections to the pool, so an ended
/// transaction's locks would outlive it and the command could wait on them forever.
pub async fn output(command: std::process::Command) -> std::process::Output {
    tokio::process::Command::from(command)
        .output()
        .await
        .expect("the command runs")
}

pub async fn project(pool: &PgPool) {
    cert_assistant::feed::Projector::new(pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("the read model catches up");
}

/// Turns pending events into chat jobs for the configured platforms (`outbox`), then
/// delivers every job with `notifiers` until none is left.
pub async fn deliver<const N: usize>(
    pool: &PgPool,
    outbox: &cert_assistant::chat::outbound::ChatOutbox,
    notifiers: [&cert_assistant::chat::outbound::ChatNotifier; N],
) {
    cert_assistant::feed::Projector::for_consumer(pool.clone(), outbox.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("the chat outbox catches up");
    loop {
        let mut claimed = 0;
        for notifier in &notifiers {
            claimed += notifier.step().await.expect("delivered");
        }
        if claimed == 0 {
            break;
        }
    }
}

/// Runs the revocation feed (which asks approvers by e-mail), then sends every mail it
/// queued through a local mailer: each mail's recipient and text.
pub async fn mail_revocation_asks(
    db: &TestDb,
    commands: &cert_assistant::commands::Commands,
) -> Vec<(String, String)> {
    use cert_assistant::adapters::mail::LocalMailer;
    use cert_assistant::saga::mail::MailWorker;
    cert_assistant::feed::Projector::for_consumer(
        db.pool.clone(),
        cert_assistant::saga::revocation::RevocationFeed,
    )
    .catch_up(std::time::Duration::from_secs(30))
    .await
    .expect("the revocation feed catches up");
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = MailWorker::new(
        commands.clone(),
        std::sync::Arc::new(LocalMailer::new(dir.path())),
    );
    while worker.step().await.expect("mail sent") > 0 {}
    std::fs::read_dir(dir.path())
        .expect("mail dir")
        .filter_map(Result::ok)
        .map(|file| {
            let text = std::fs::read_to_string(file.path()).expect("mail");
            let to = text
                .lines()
                .find_map(|line| line.strip_prefix("To: "))
                .unwrap_or_default()
                .to_owned();
            (to, text)
        })
        .collect()
}

/// The first request number (`REQ-…`) in a text.
pub fn request_number_in(text: &str) -> String {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| w.starts_with("REQ-"))
        .unwrap_or_else(|| panic!("no request number in {text}"))
        .to_owned()
}

/// The token of the first download link (`…/downloads/TOKEN`) in a text.
pub fn download_token_in(text: &str) -> String {
    text.split("/downloads/")
        .nth(1)
        .unwrap_or_else(|| panic!("no download link in {text}"))
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// The `cert-assistant` binary with none of the environment's own settings (`DATABASE_URL`,
/// `CERT_ASSISTANT_*`, `OTEL_*`, `AWS_*`, `RUST_LOG`): only what the test sets.
pub fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
    for (key, _) in std::env::vars() {
        if key == "DATABASE_URL"
            || key == "RUST_LOG"
            || ["CERT_ASSISTANT_", "OTEL_", "AWS_"]
                .iter()
                .any(|prefix| key.starts_with(prefix))
        {
            command.env_remove(key);
        }
    }
    command
}
