//! Configuration: one typed struct, loaded once at start-up.
//!
//! Sources, later ones winning:
//! 1. built-in defaults (enough to run on a laptop with nothing configured);
//! 2. an optional TOML file (`--config FILE` or `CERT_ASSISTANT_CONFIG`);
//! 3. environment variables `CERT_ASSISTANT_<SECTION>__<FIELD>` (for example
//!    `CERT_ASSISTANT_HTTP__LISTEN=0.0.0.0:8080`), and the conventional `DATABASE_URL`.
//!
//! Secrets are [`SecretString`]s: their `Debug` output is redacted and they are only exposed
//! where they are used. [`Config::validate`] runs before anything starts and reports every
//! problem at once, in words an operator can act on, without echoing secret values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Environment variable prefix of every setting (nested sections are separated by `__`).
pub const ENV_PREFIX: &str = "CERT_ASSISTANT_";

/// The whole configuration of the service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the data lives.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The HTTP listener (health checks, chat webhooks).
    #[serde(default)]
    pub http: HttpConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Private-key encryption.
    #[serde(default)]
    pub keys: KeysConfig,
    /// Who is who.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Where artifacts (certificates, chains, audit archives) are kept.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Slack (enabled when both secrets are set).
    #[serde(default)]
    pub slack: SlackConfig,
    /// Discord (enabled when the application's public key, id and bot token are set).
    #[serde(default)]
    pub discord: DiscordConfig,
    /// Microsoft Teams (enabled when the bot's app id and password are set).
    #[serde(default)]
    pub teams: TeamsConfig,
    /// The embedded CA.
    #[serde(default)]
    pub ca: CaConfig,
    /// ADCS Web Enrollment (used instead of the embedded CA when `adcs.url` is set).
    #[serde(default)]
    pub adcs: AdcsConfig,
    /// E-mail delivery.
    #[serde(default)]
    pub mail: MailConfig,
    /// The public CA, AWS Certificate Manager.
    #[serde(default)]
    pub acm: AcmConfig,
    /// What every chat platform shares.
    #[serde(default)]
    pub chat: ChatConfig,
    /// Where `/metrics` is served.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Where traces go.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// Traces, exported over OTLP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An OpenTelemetry collector's OTLP/HTTP endpoint, such as `http://otel-collector:4318`:
    /// spans are sent (protobuf) to its `/v1/traces`. Without it no trace is exported.
    /// Headers the collector wants (an API key) come from `OTEL_EXPORTER_OTLP_HEADERS`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans carry (default `cert-assistant`).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// The share of traces kept, from 0 to 1 (default 1: every trace). A trace started
    /// elsewhere in the service keeps its first decision.
    #[serde(default = "default_sample_ratio", deserialize_with = "lenient_number")]
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: default_service_name(),
            sample_ratio: default_sample_ratio(),
        }
    }
}

fn default_service_name() -> String {
    "cert-assistant".to_owned()
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl TelemetryConfig {
    /// Where spans are posted: the endpoint's `/v1/traces`, as OTLP/HTTP defines it.
    pub fn traces_url(&self) -> Option<String> {
        let endpoint = self.otlp_endpoint.as_deref()?.trim();
        if endpoint.is_empty() {
            return None;
        }
        let base = endpoint.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        })
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = self.traces_url() {
            // Never echo the endpoint: it may carry credentials.
            match url::Url::parse(&url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                _ => problems.push(
                    "telemetry.otlp_endpoint must be an http:// or https:// URL such as \
                     http://otel-collector:4318"
                        .to_owned(),
                ),
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push("telemetry.sample_ratio must be between 0 and 1".to_owned());
        }
        if self.service_name.trim().is_empty() || self.service_name.len() > 100 {
            problems.push("telemetry.service_name must be 1 to 100 characters".to_owned());
        }
        problems
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// An address of its own for `GET /metrics` (e.g. `10.0.0.5:9464`), which is then not
    /// served on `http.listen`. Without it `/metrics` is on `http.listen`. The scrape names
    /// every active certificate (common name, serial, owner's department): where
    /// `http.listen` faces the internet (chat webhooks), give it a private address.
    #[serde(default)]
    pub listen: Option<String>,
}

/// Chat commands on every platform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Most chat commands one replica works on at once (default 32); more wait for a place.
    #[serde(default = "default_max_in_flight", deserialize_with = "lenient_number")]
    pub max_in_flight: u32,
    /// How long a command waits for a place before it is answered "busy, try again"
    /// (default 500 ms; Slack and Discord want an answer within 3 s).
    #[serde(default = "default_busy_after_ms", deserialize_with = "lenient_number")]
    pub busy_after_ms: u64,
}

fn default_max_in_flight() -> u32 {
    32
}

fn default_busy_after_ms() -> u64 {
    500
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            max_in_flight: default_max_in_flight(),
            busy_after_ms: default_busy_after_ms(),
        }
    }
}

/// AWS Certificate Manager, the public CA (the AWS configuration chain S3 and SES use).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmConfig {
    /// Requests for the public CA go to ACM (default: off; they are refused, or sent to the
    /// internal CA by `certificate.public_requests`).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enabled: bool,
    /// ACM region (default: from the AWS environment).
    #[serde(default)]
    pub region: Option<String>,
    /// Another ACM endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Route 53 hosted zones (ids, comma-separated) where the service creates ACM's DNS
    /// validation records itself, for the names they cover.
    #[serde(default, deserialize_with = "comma_list")]
    pub route53_zone_ids: Vec<String>,
    /// Another Route 53 endpoint.
    #[serde(default)]
    pub route53_endpoint: Option<String>,
}

/// ADCS Web Enrollment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdcsConfig {
    /// The server, e.g. `https://adcs.example.com` (certsrv lives under `/certsrv`).
    #[serde(default)]
    pub url: Option<String>,
    /// How to log in: `ntlm` (Windows Integrated Authentication, IIS's default for certsrv)
    /// or `basic` (default, when IIS has Basic Authentication enabled).
    #[serde(default)]
    pub auth: AdcsAuth,
    /// The service account, e.g. `EXAMPLE\\svc-certs` or `svc-certs@example.com`.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// PEM file with the CAs that sign the ADCS server's TLS certificate.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// PEM file with a client certificate and its key, for TLS client authentication.
    #[serde(default)]
    pub client_identity: Option<PathBuf>,
    /// Seconds per request (default 30).
    #[serde(default, deserialize_with = "lenient_optional_number")]
    pub timeout_seconds: Option<u64>,
    /// Templates by certificate type, e.g. `web_server = "WebServer2026"` (TOML table) or
    /// `web_server=WebServer2026,user_auth=User` (environment).
    #[serde(default, deserialize_with = "template_map")]
    pub templates: std::collections::BTreeMap<String, String>,
    /// The command that revokes at the CA, as words (TOML array) or one line split at
    /// whitespace (environment), with `{serial}`, `{reason}` (CRL reason code) and
    /// `{reason_name}` replaced; e.g. `["ssh", "ca01", "certutil", "-revoke", "{serial}",
    /// "{reason}"]`. Without it every revocation becomes a task for an operator, which an
    /// admin confirms (`/cert confirm-revocation SERIAL`).
    #[serde(default, deserialize_with = "words")]
    pub revoke_command: Vec<String>,
    /// Seconds the revoke command may take (default 120).
    #[serde(default, deserialize_with = "lenient_optional_number")]
    pub revoke_timeout_seconds: Option<u64>,
}

/// How the service logs in to ADCS Web Enrollment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdcsAuth {
    /// HTTP Basic.
    #[default]
    Basic,
    /// NTLM, in the `NTLM` or `Negotiate` scheme.
    Ntlm,
}

/// The embedded CA (used while no ADCS is configured).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// The CRL distribution point written into certificates: where relying parties fetch the
    /// CRL this service serves at `/ca/crl.der`. Default `http://<http.listen>/ca/crl.der`.
    #[serde(default)]
    pub crl_url: Option<String>,
}

/// The Slack app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's signing secret ("Basic Information" → "App Credentials").
    #[serde(default)]
    pub signing_secret: Option<SecretString>,
    /// The bot token, `xoxb-…` ("OAuth & Permissions").
    #[serde(default)]
    pub bot_token: Option<SecretString>,
    /// The Web API's base URL (default `https://slack.com/api`; tests use a local server).
    #[serde(default = "default_slack_api")]
    pub api_base_url: String,
    /// A channel id (`C…`) where every approval request is also posted; approvers always get
    /// a DM.
    #[serde(default)]
    pub approvals_channel: Option<String>,
}

/// The Discord application (HTTP interactions endpoint).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The application's public key, 64 hex digits ("General Information").
    #[serde(default)]
    pub public_key: Option<DiscordPublicKey>,
    /// The application id.
    #[serde(default)]
    pub application_id: Option<String>,
    /// The bot token ("Bot").
    #[serde(default)]
    pub bot_token: Option<SecretString>,
    /// The REST API's base URL (default `https://discord.com/api/v10`; tests use a local
    /// server).
    #[serde(default = "default_discord_api")]
    pub api_base_url: String,
}

/// The Teams bot (Azure Bot registration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The bot's Microsoft App ID (the audience of the tokens Teams sends).
    #[serde(default)]
    pub app_id: Option<String>,
    /// The bot's client secret.
    #[serde(default)]
    pub app_password: Option<SecretString>,
    /// For a single-tenant bot: its tenant id (tokens for replies come from that tenant).
    /// It is also the one tenant served unless `allowed_tenants` names more.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The Entra tenants whose people are served (comma-separated in the environment).
    /// Required for a multi-tenant bot (no `tenant_id`): any tenant can install a bot by its
    /// app id, and the e-mail a foreign tenant reports for its users is whatever it says.
    #[serde(default, deserialize_with = "comma_list")]
    pub allowed_tenants: Vec<String>,
    /// Where Bot Framework publishes its signing keys.
    #[serde(default = "default_teams_openid")]
    pub openid_metadata_url: String,
    /// The token issuer Bot Framework uses.
    #[serde(default = "default_teams_issuer")]
    pub issuer: String,
    /// Where the bot gets its own tokens (default: Bot Framework's, or the tenant's when
    /// `tenant_id` is set).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Reach people who never wrote to the bot (approvers, owners) by installing the app for
    /// them through Microsoft Graph (default: on; it needs the Graph application permissions
    /// the README names). Off, or without them, the admins are told who cannot be reached.
    #[serde(default = "yes", deserialize_with = "lenient_bool")]
    pub proactive: bool,
    /// Microsoft Graph.
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Where the bot gets its Graph tokens; `{tenant}` stands for the tenant's id.
    #[serde(default = "default_graph_token_url")]
    pub graph_token_url: String,
    /// The connector for a tenant none of whose people wrote to the bot yet (Teams' global
    /// one; a tenant's own is learnt from its first activity).
    #[serde(default = "default_teams_service_url")]
    pub service_url: String,
}

fn yes() -> bool {
    true
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".to_owned()
}

fn default_graph_token_url() -> String {
    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token".to_owned()
}

fn default_teams_service_url() -> String {
    "https://smba.trafficmanager.net/teams/".to_owned()
}

fn default_teams_openid() -> String {
    "https://login.botframework.com/v1/.well-known/openidconfiguration".to_owned()
}

fn default_teams_issuer() -> String {
    "https://api.botframework.com".to_owned()
}

impl Default for TeamsConfig {
    fn default() -> Self {
        Self {
            app_id: None,
            app_password: None,
            tenant_id: None,
            allowed_tenants: Vec::new(),
            openid_metadata_url: default_teams_openid(),
            issuer: default_teams_issuer(),
            token_url: None,
            proactive: true,
            graph_url: default_graph_url(),
            graph_token_url: default_graph_token_url(),
            service_url: default_teams_service_url(),
        }
    }
}

impl TeamsConfig {
    /// The tenants whose activities are served: `allowed_tenants` and `tenant_id`,
    /// lower-cased.
    pub fn served_tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self
            .allowed_tenants
            .iter()
            .chain(self.tenant_id.iter())
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        tenants.sort();
        tenants.dedup();
        tenants
    }

    /// The token endpoint for the bot's own tokens.
    pub fn token_endpoint(&self) -> String {
        self.token_url.clone().unwrap_or_else(|| {
            format!(
                "https://login.microsoftonline.com/{}/oauth2/v2.0/token",
                self.tenant_id.as_deref().unwrap_or("botframework.com")
            )
        })
    }
}

fn default_discord_api() -> String {
    "https://discord.com/api/v10".to_owned()
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            public_key: None,
            application_id: None,
            bot_token: None,
            api_base_url: default_discord_api(),
        }
    }
}

impl DiscordConfig {
    /// Whether Discord is configured at all.
    pub fn enabled(&self) -> bool {
        self.public_key.is_some() || self.application_id.is_some() || self.bot_token.is_some()
    }
}

fn default_slack_api() -> String {
    "https://slack.com/api".to_owned()
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            signing_secret: None,
            bot_token: None,
            api_base_url: default_slack_api(),
            approvals_channel: None,
        }
    }
}

/// The artifact store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the local store. Default: `artifacts` beside the private cluster's
    /// directory (`~/.local/share/cert-assistant/artifacts`, or `/var/lib/cert-assistant/…`
    /// as root).
    #[serde(default)]
    pub local_dir: Option<PathBuf>,
    /// An S3 bucket: when set, artifacts go to S3 instead of the local directory.
    #[serde(default)]
    pub s3_bucket: Option<String>,
    /// The bucket's region (default: from the AWS environment).
    #[serde(default)]
    pub s3_region: Option<String>,
    /// Another S3 endpoint (S3-compatible servers).
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// Path-style addressing (`true` for most S3-compatible servers).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub s3_force_path_style: bool,
    /// Server-side encryption: `AES256` or `aws:kms`.
    #[serde(default)]
    pub s3_server_side_encryption: Option<String>,
    /// The KMS key for `aws:kms`.
    #[serde(default)]
    pub s3_kms_key_id: Option<String>,
}

/// An Ed25519 public key as Discord shows it: 64 hex digits, parsed when the configuration
/// is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DiscordPublicKey([u8; 32]);

impl DiscordPublicKey {
    /// The key's bytes.
    pub fn bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl FromStr for DiscordPublicKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = text.trim();
        let problem =
            || "discord.public_key must be the application's public key: 64 hex digits".to_owned();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(problem());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| problem())?;
        }
        Ok(Self(key))
    }
}

impl TryFrom<String> for DiscordPublicKey {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// How e-mail leaves the service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// `.eml` files in `mail.local_dir` (for trying it out, or a relay that picks them up).
    #[default]
    Local,
    /// Amazon SES.
    Ses,
}

/// E-mail.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// `local` (default: `.eml` files in `mail.local_dir`) or `ses`.
    #[serde(default)]
    pub transport: MailTransport,
    /// Directory of the local outbox. Default: `mail` beside the private cluster's directory.
    #[serde(default)]
    pub local_dir: Option<PathBuf>,
    /// SES region (default: from the AWS environment).
    #[serde(default)]
    pub ses_region: Option<String>,
    /// Another SES endpoint.
    #[serde(default)]
    pub ses_endpoint: Option<String>,
}

/// Encryption of the private keys the service generates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The key-encryption key: 32 random bytes in base64 (`openssl rand -base64 32`). Every
    /// replica needs the same one. Unset: read from (or, the first time, created in)
    /// `encryption_key_file`, which suits a single machine only.
    #[serde(default)]
    pub encryption_key: Option<SecretString>,
    /// File holding the key-encryption key when `encryption_key` is unset. Default:
    /// `key-encryption-key` beside the private cluster's directory
    /// (`~/.local/share/cert-assistant/`, or `/var/lib/cert-assistant/` as root).
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
}

/// Identity settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// E-mail addresses that become admins when first seen (comma-separated in the
    /// environment). Admins then grant roles to others.
    #[serde(default, deserialize_with = "comma_list")]
    pub admins: Vec<String>,
    /// OpenID Connect sign-in to the dashboard, besides the links `/cert dashboard` hands
    /// out: the identity provider's issuer URL (Azure AD:
    /// `https://login.microsoftonline.com/TENANT/v2.0`; Okta: `https://ORG.okta.com`). Its
    /// discovery document is read on the first sign-in. People sign in as the e-mail address
    /// the provider vouches for; their role here decides what they see.
    #[serde(default)]
    pub oidc_issuer_url: Option<String>,
    /// The client id registered with the provider (redirect URI:
    /// `http.public_url` + `/dashboard/oidc/callback`).
    #[serde(default)]
    pub oidc_client_id: Option<String>,
    /// The client secret registered with the provider.
    #[serde(default)]
    pub oidc_client_secret: Option<SecretString>,
    /// What the sign-in button names the provider (default: "your organisation").
    #[serde(default)]
    pub oidc_name: Option<String>,
}

/// Whether `url` is plain HTTP to this machine (a provider run for tests or development).
fn loopback_http(url: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| {
            url.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        })
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `DATABASE_URL` (or `CERT_ASSISTANT_DATABASE__URL`): a `postgres://` URL of the server to
    /// use. Unset: the service starts its own private PostgreSQL cluster (see `private`).
    #[serde(default)]
    pub url: Option<SecretString>,
    /// A read replica's `postgres://` URL (an RDS or Aurora reader endpoint): the dashboard
    /// and `query` read there. Unset: they read the primary. (Sign-ins, and the events a
    /// request's story is folded from, stay on the primary.)
    #[serde(default)]
    pub read_url: Option<SecretString>,
    /// Largest number of pooled connections (default 10).
    #[serde(
        default = "default_max_connections",
        deserialize_with = "lenient_number"
    )]
    pub max_connections: u32,
    /// Settings of the private cluster used when `url` is unset.
    #[serde(default)]
    pub private: PrivatePostgresConfig,
}

/// The private PostgreSQL cluster the service runs when no `DATABASE_URL` is given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivatePostgresConfig {
    /// Directory that holds the cluster (`pgdata/`, its socket in `run/`, `postgres.log`).
    /// Default: `$XDG_DATA_HOME/cert-assistant/postgres` (usually
    /// `~/.local/share/cert-assistant/postgres`); `/var/lib/cert-assistant/postgres` when
    /// running as root, because the server then runs as the `postgres` user, who cannot enter
    /// root's home.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Directory of the PostgreSQL 15+ server programs (`initdb`, `pg_ctl`, `postgres`).
    /// Default: found through `pg_config --bindir`, `/usr/lib/postgresql/*/bin`, then `PATH`.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// System user that runs the server when the service runs as root (PostgreSQL refuses
    /// to run as root). Default `postgres`.
    #[serde(default)]
    pub run_as_user: Option<String>,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on (default `127.0.0.1:8080`; use `0.0.0.0:8080` behind a load
    /// balancer). Port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL people reach the service at, for the download links `/cert download` hands
    /// out (default `http://` + `listen`). Set it behind a load balancer or TLS proxy.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` (default) for terminals, `json` for log shippers.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,cert_assistant=debug` (default
    /// `info,sqlx=warn`).
    /// `RUST_LOG`, when set, wins.
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object a line.
    Json,
}

fn default_max_connections() -> u32 {
    10
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_log_filter() -> String {
    // sqlx reports PostgreSQL's NOTICEs (e.g. "already exists, skipping") at info.
    "info,sqlx=warn".to_owned()
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            read_url: None,
            max_connections: default_max_connections(),
            private: PrivatePostgresConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            filter: default_log_filter(),
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or did not have the right shape.
    #[error("could not load the configuration: {0}")]
    Load(String),
    /// The values were read but some are not usable.
    #[error("the configuration is not valid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "the configuration file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // The environment is mapped by hand (rather than figment's `Env`) so tests can pass
        // their own, and so every value stays a string: a secret made of digits must not turn
        // into a number. Numeric fields accept strings through `lenient_number`.
        let mut from_env = serde_json::Map::new();
        for (key, value) in &env {
            if key == "DATABASE_URL" {
                insert_path(&mut from_env, &["database", "url"], value);
            } else if let Some(rest) = key.strip_prefix(ENV_PREFIX) {
                if rest == "CONFIG" {
                    continue;
                }
                let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                insert_path(&mut from_env, &path, value);
            }
        }
        figment = figment.merge(Serialized::defaults(serde_json::Value::Object(from_env)));
        let config: Self = figment
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field that can be checked without side effects.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = self.listen_addr() {
            problems.push(e);
        }
        if let Err(e) = self.metrics_addr() {
            problems.push(e);
        }
        problems.extend(self.telemetry.problems());
        if self.database.max_connections == 0 {
            problems.push("database.max_connections must be at least 1".to_owned());
        }
        if self.chat.max_in_flight == 0 {
            problems.push("chat.max_in_flight must be at least 1".to_owned());
        }
        if self.chat.busy_after_ms > 2_500 {
            problems.push(
                "chat.busy_after_ms must be at most 2500: Slack and Discord want an answer \
                 within 3 s"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.database.url {
            // Never echo the URL: it usually carries a password.
            let url = url.expose_secret();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                problems
                    .push("DATABASE_URL must start with postgres:// or postgresql://".to_owned());
            } else if let Err(e) = sqlx::postgres::PgConnectOptions::from_str(url) {
                problems.push(format!(
                    "DATABASE_URL is not a valid PostgreSQL URL ({}); expected postgres://user:password@host:5432/database",
                    describe_url_error(&e)
                ));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            problems.push(format!(
                "log.filter {:?} is not a valid filter: {e}",
                self.log.filter
            ));
        }
        for admin in &self.auth.admins {
            if let Err(e) = crate::domain::values::Email::parse(admin) {
                problems.push(format!("auth.admins: {e}"));
            }
        }
        if let Some(key) = &self.keys.encryption_key
            && crate::pki::envelope::KeyEncryptionKey::from_base64(key.expose_secret()).is_err()
        {
            problems.push(
                "keys.encryption_key must be 32 random bytes in base64 \
                 (for example: openssl rand -base64 32)"
                    .to_owned(),
            );
        }
        if self.slack.signing_secret.is_some() != self.slack.bot_token.is_some() {
            problems.push(
                "Slack needs both slack.signing_secret and slack.bot_token \
                 (CERT_ASSISTANT_SLACK__SIGNING_SECRET, CERT_ASSISTANT_SLACK__BOT_TOKEN)"
                    .to_owned(),
            );
        }
        if self.discord.enabled() {
            if self.discord.public_key.is_none()
                || self.discord.application_id.is_none()
                || self.discord.bot_token.is_none()
            {
                problems.push(
                    "Discord needs discord.public_key, discord.application_id and \
                     discord.bot_token (CERT_ASSISTANT_DISCORD__PUBLIC_KEY, …__APPLICATION_ID, \
                     …__BOT_TOKEN)"
                        .to_owned(),
                );
            }
            if !(self.discord.api_base_url.starts_with("https://")
                || self.discord.api_base_url.starts_with("http://"))
            {
                problems.push("discord.api_base_url must be an http(s) URL".to_owned());
            }
        }
        if self.teams.app_id.is_some() != self.teams.app_password.is_some() {
            problems.push(
                "Teams needs both teams.app_id and teams.app_password \
                 (CERT_ASSISTANT_TEAMS__APP_ID, CERT_ASSISTANT_TEAMS__APP_PASSWORD)"
                    .to_owned(),
            );
        }
        if self.teams.app_id.is_some() && self.teams.served_tenants().is_empty() {
            problems.push(
                "a multi-tenant Teams bot (no teams.tenant_id) must list the tenants it serves \
                 in teams.allowed_tenants (CERT_ASSISTANT_TEAMS__ALLOWED_TENANTS, \
                 comma-separated tenant ids)"
                    .to_owned(),
            );
        }
        let oidc = [
            self.auth.oidc_issuer_url.is_some(),
            self.auth.oidc_client_id.is_some(),
            self.auth.oidc_client_secret.is_some(),
        ];
        if oidc.contains(&true) && oidc.contains(&false) {
            problems.push(
                "OpenID Connect sign-in needs auth.oidc_issuer_url, auth.oidc_client_id and \
                 auth.oidc_client_secret together (CERT_ASSISTANT_AUTH__OIDC_ISSUER_URL, \
                 …__OIDC_CLIENT_ID, …__OIDC_CLIENT_SECRET)"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.auth.oidc_issuer_url
            && !(url.starts_with("https://") || loopback_http(url))
        {
            problems.push(
                "auth.oidc_issuer_url must be an https:// URL (plain http only on this machine)"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.http.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push("http.public_url must be an http(s) URL".to_owned());
        }
        if !(self.slack.api_base_url.starts_with("https://")
            || self.slack.api_base_url.starts_with("http://"))
        {
            problems.push("slack.api_base_url must be an http(s) URL".to_owned());
        }
        if self.adcs.url.is_some() && (self.adcs.username.is_none() || self.adcs.password.is_none())
        {
            problems.push(
                "ADCS needs adcs.username and adcs.password with adcs.url \
                 (CERT_ASSISTANT_ADCS__USERNAME, CERT_ASSISTANT_ADCS__PASSWORD)"
                    .to_owned(),
            );
        }
        for kind in self.adcs.templates.keys() {
            if crate::domain::values::CertificateType::parse(kind).is_err() {
                problems.push(format!(
                    "adcs.templates: {kind:?} is not a certificate type"
                ));
            }
        }
        if let Some(user) = &self.database.private.run_as_user
            && user.trim().is_empty()
        {
            problems.push("database.private.run_as_user must not be empty".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The address of `/metrics`' own listener, if it has one.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        self.metrics
            .listen
            .as_deref()
            .map(|listen| {
                listen.parse().map_err(|_| {
                    format!("metrics.listen {listen:?} is not an address such as 10.0.0.5:9464")
                })
            })
            .transpose()
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.http.listen.parse().map_err(|_| {
            format!(
                "http.listen {:?} is not an address such as 127.0.0.1:8080",
                self.http.listen
            )
        })
    }
}

fn describe_url_error(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Configuration(_) => "malformed URL".to_owned(),
        _ => "unreadable URL".to_owned(),
    }
}

fn insert_path(map: &mut serde_json::Map<String, serde_json::Value>, path: &[&str], value: &str) {
    match path {
        [] => {}
        [last] => {
            map.insert(
                (*last).to_owned(),
                serde_json::Value::String(value.to_owned()),
            );
        }
        [first, rest @ ..] => {
            let entry = map
                .entry((*first).to_owned())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// Accepts a list as a TOML array or as a comma-separated string (environment variables).
fn comma_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

fn lenient_bool<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        String(String),
    }
    match BoolOrString::deserialize(deserializer)? {
        BoolOrString::Bool(b) => Ok(b),
        BoolOrString::String(s) => match s.trim() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not true or false"
            ))),
        },
    }
}

fn lenient_optional_number<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    lenient_number(deserializer).map(Some)
}

fn template_map<'de, D>(
    deserializer: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum MapOrString {
        Map(std::collections::BTreeMap<String, String>),
        String(String),
    }
    Ok(match MapOrString::deserialize(deserializer)? {
        MapOrString::Map(map) => map,
        MapOrString::String(text) => text
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    })
}

/// A list of words (TOML array) or one line split at whitespace (environment variables).
fn words<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(words) => words,
        ListOrString::String(line) => line.split_whitespace().map(str::to_owned).collect(),
    })
}

/// A number, given as a number (a file) or as text (the environment).
fn lenient_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + FromStr,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString<T> {
        Number(T),
        String(String),
    }
    let invalid = || serde::de::Error::custom("expected a number in range");
    match NumberOrString::deserialize(deserializer).map_err(|_: D::Error| invalid())? {
        NumberOrString::Number(n) => Ok(n),
        NumberOrString::String(s) => s.trim().parse().map_err(|_| invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = Config::load_from(None, env(&[])).expect("defaults are valid");
        assert_eq!(config.http.listen, "127.0.0.1:8080");
        assert!(config.database.url.is_none());
        assert_eq!(config.log.format, LogFormat::Human);
    }

    #[test]
    fn environment_overrides_nested_fields() {
        let config = Config::load_from(
            None,
            env(&[
                ("CERT_ASSISTANT_HTTP__LISTEN", "0.0.0.0:9000"),
                ("CERT_ASSISTANT_LOG__FORMAT", "json"),
                ("CERT_ASSISTANT_DATABASE__MAX_CONNECTIONS", "3"),
                (
                    "DATABASE_URL",
                    "postgres://app:hunter2@db.example.com/certs",
                ),
            ]),
        )
        .expect("valid");
        assert_eq!(config.http.listen, "0.0.0.0:9000");
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.database.max_connections, 3);
        assert!(config.database.url.is_some());
    }

    #[test]
    fn debug_output_never_shows_the_database_password() {
        let config = Config::load_from(
            None,
            env(&[(
                "DATABASE_URL",
                "postgres://app:hunter2@db.example.com/certs",
            )]),
        )
        .expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn invalid_values_are_all_reported_without_secrets() {
        let err = Config::load_from(
            None,
            env(&[
                ("CERT_ASSISTANT_HTTP__LISTEN", "not-an-address"),
                ("CERT_ASSISTANT_DATABASE__MAX_CONNECTIONS", "0"),
                ("DATABASE_URL", "mysql://app:hunter2@db/certs"),
            ]),
        )
        .expect_err("invalid");
        let message = err.to_string();
        assert!(message.contains("http.listen"), "{message}");
        assert!(message.contains("max_connections"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn the_chat_gate_is_set_from_the_environment_and_bounded() {
        let config = Config::load_from(
            None,
            env(&[
                ("CERT_ASSISTANT_CHAT__MAX_IN_FLIGHT", "8"),
                ("CERT_ASSISTANT_CHAT__BUSY_AFTER_MS", "250"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            (config.chat.max_in_flight, config.chat.busy_after_ms),
            (8, 250)
        );
        let message = Config::load_from(
            None,
            env(&[
                ("CERT_ASSISTANT_CHAT__MAX_IN_FLIGHT", "0"),
                ("CERT_ASSISTANT_CHAT__BUSY_AFTER_MS", "5000"),
            ]),
        )
        .expect_err("out of bounds")
        .to_string();
        assert!(message.contains("chat.max_in_flight"), "{message}");
        assert!(message.contains("chat.busy_after_ms"), "{message}");
    }

    #[test]
    fn metrics_get_a_listener_of_their_own_only_at_an_address() {
        let config = Config::load_from(
            None,
            env(&[("CERT_ASSISTANT_METRICS__LISTEN", "10.0.0.5:9464")]),
        )
        .expect("valid");
        assert_eq!(
            config.metrics_addr(),
            Ok(Some("10.0.0.5:9464".parse().expect("an address")))
        );
        let unset = Config::load_from(None, env(&[])).expect("valid");
        assert_eq!(unset.metrics_addr(), Ok(None));
        let message = Config::load_from(
            None,
            env(&[("CERT_ASSISTANT_METRICS__LISTEN", "everywhere:9464")]),
        )
        .expect_err("not an address")
        .to_string();
        assert!(
            message.contains("metrics.listen \"everywhere:9464\""),
            "{message}"
        );
    }

    #[test]
    fn traces_go_to_the_endpoints_v1_traces_and_a_bad_endpoint_is_named_but_not_echoed() {
        let unset = Config::load_from(None, env(&[])).expect("valid");
        assert_eq!(unset.telemetry.traces_url(), None);
        assert_eq!(unset.telemetry.sample_ratio, 1.0);
        for (endpoint, url) in [
            ("http://otel:4318", "http://otel:4318/v1/traces"),
            (
                "https://otel.example.com/",
                "https://otel.example.com/v1/traces",
            ),
            ("http://otel:4318/v1/traces", "http://otel:4318/v1/traces"),
        ] {
            let config = Config::load_from(
                None,
                env(&[
                    ("CERT_ASSISTANT_TELEMETRY__OTLP_ENDPOINT", endpoint),
                    ("CERT_ASSISTANT_TELEMETRY__SAMPLE_RATIO", "0.25"),
                ]),
            )
            .expect("valid");
            assert_eq!(config.telemetry.traces_url().as_deref(), Some(url));
            assert_eq!(config.telemetry.sample_ratio, 0.25);
        }
        for (key, value, problem) in [
            (
                "CERT_ASSISTANT_TELEMETRY__OTLP_ENDPOINT",
                "ftp://user:hunter2@otel",
                "telemetry.otlp_endpoint",
            ),
            (
                "CERT_ASSISTANT_TELEMETRY__SAMPLE_RATIO",
                "1.5",
                "telemetry.sample_ratio",
            ),
        ] {
            let message = Config::load_from(None, env(&[(key, value)]))
                .expect_err("invalid")
                .to_string();
            assert!(message.contains(problem), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn a_multi_tenant_teams_bot_must_name_the_tenants_it_serves() {
        let bot = [
            ("CERT_ASSISTANT_TEAMS__APP_ID", "app"),
            ("CERT_ASSISTANT_TEAMS__APP_PASSWORD", "secret"),
        ];
        let message = Config::load_from(None, env(&bot))
            .expect_err("no tenant at all")
            .to_string();
        assert!(message.contains("teams.allowed_tenants"), "{message}");
        let listed = Config::load_from(
            None,
            env(&[
                bot[0],
                bot[1],
                ("CERT_ASSISTANT_TEAMS__ALLOWED_TENANTS", "T-1, t-2"),
            ]),
        )
        .expect("listed");
        assert_eq!(listed.teams.served_tenants(), ["t-1", "t-2"]);
        let single = Config::load_from(
            None,
            env(&[bot[0], bot[1], ("CERT_ASSISTANT_TEAMS__TENANT_ID", "T-9")]),
        )
        .expect("single-tenant");
        assert_eq!(single.teams.served_tenants(), ["t-9"]);
    }

    #[test]
    fn admins_come_as_a_comma_separated_list_and_keys_are_checked() {
        let config = Config::load_from(
            None,
            env(&[(
                "CERT_ASSISTANT_AUTH__ADMINS",
                "a@example.com, b@example.com",
            )]),
        )
        .expect("valid");
        assert_eq!(config.auth.admins, ["a@example.com", "b@example.com"]);
        let err = Config::load_from(
            None,
            env(&[
                ("CERT_ASSISTANT_AUTH__ADMINS", "not-an-email"),
                ("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", "dG9vIHNob3J0"),
            ]),
        )
        .expect_err("invalid");
        let message = err.to_string();
        assert!(message.contains("auth.admins"), "{message}");
        assert!(message.contains("keys.encryption_key"), "{message}");
        assert!(!message.contains("dG9vIHNob3J0"), "{message}");
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err = Config::load_from(None, env(&[("CERT_ASSISTANT_HTTP__LISTEM", "x")]))
            .expect_err("typo is refused");
        assert!(err.to_string().contains("listem"), "{err}");
    }

    #[test]
    fn a_file_is_read_and_the_environment_wins_over_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cert-assistant.toml");
        std::fs::write(
            &path,
            "[http]\nlisten = \"127.0.0.1:7000\"\n[log]\nfilter = \"debug\"\n",
        )
        .expect("write");
        let config = Config::load_from(
            Some(&path),
            env(&[("CERT_ASSISTANT_HTTP__LISTEN", "127.0.0.1:7001")]),
        )
        .expect("valid");
        assert_eq!(config.http.listen, "127.0.0.1:7001");
        assert_eq!(config.log.filter, "debug");
    }

    #[test]
    fn the_revoke_command_comes_as_words_or_as_one_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cert-assistant.toml");
        std::fs::write(
            &path,
            "[adcs]\nrevoke_command = [\"ssh\", \"ca01\", \"certutil\", \"-revoke\", \"{serial}\", \"{reason}\"]\n",
        )
        .expect("write");
        let config = Config::load_from(Some(&path), env(&[])).expect("valid");
        assert_eq!(
            config.adcs.revoke_command,
            ["ssh", "ca01", "certutil", "-revoke", "{serial}", "{reason}"]
        );
        let config = Config::load_from(
            None,
            env(&[(
                "CERT_ASSISTANT_ADCS__REVOKE_COMMAND",
                "/opt/revoke.sh  {serial} {reason}",
            )]),
        )
        .expect("valid");
        assert_eq!(
            config.adcs.revoke_command,
            ["/opt/revoke.sh", "{serial}", "{reason}"]
        );
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let err = Config::load_from(Some(Path::new("/nonexistent/ca.toml")), env(&[]))
            .expect_err("missing");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn a_discord_public_key_is_64_hex_digits_and_says_so_otherwise() {
        let key: DiscordPublicKey =
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
                .parse()
                .expect("valid");
        assert_eq!(key.bytes()[0], 0xd7);
        for bad in ["not hex", &"0".repeat(63), &"g".repeat(64)] {
            let error = bad.parse::<DiscordPublicKey>().expect_err(bad);
            assert!(error.contains("64 hex digits"), "{error}");
        }
    }

    #[test]
    fn mail_transport_is_local_or_ses_and_nothing_else() {
        let parsed = |text: &str| {
            Config::load_from(
                None,
                vec![("CERT_ASSISTANT_MAIL__TRANSPORT".into(), text.into())],
            )
        };
        assert_eq!(
            parsed("ses").expect("ses").mail.transport,
            MailTransport::Ses
        );
        assert_eq!(
            parsed("local").expect("local").mail.transport,
            MailTransport::Local
        );
        let error = parsed("smtp").expect_err("smtp").to_string();
        assert!(error.contains("smtp") && error.contains("ses"), "{error}");
    }
}
