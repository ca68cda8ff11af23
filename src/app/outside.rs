//! The outside world as the configuration names it: the key-encryption key, the CA, the
//! artifact store, the mailer, each chat platform's surface, and the process's signals.

use anyhow::Context;
use sqlx::PgPool;

use crate::adapters::ca::measured::Measured;
use crate::config::Config;
use crate::db::private_cluster;
use crate::pki::envelope::KeyEncryptionKey;

/// Completes once `stopped` turns true (or its sender is gone).
pub async fn when_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("terminated; shutting down"),
    }
}

/// The key-encryption key, checked against the database: from configuration, or from its
/// file. A file is generated (owner-only, synced with its directory) only while no key is
/// wrapped under any key-encryption key yet. It is never silently replaced: a missing file,
/// or a key other than the one the stored keys are wrapped under, stops the start with the
/// key id that is needed, because a new key would lose every private key and the embedded
/// CA. A file readable by others is refused. A generated file suits one machine; replicas
/// need the same key, so they should all be given `keys.encryption_key`.
pub async fn key_encryption_key(
    config: &Config,
    pool: &PgPool,
) -> anyhow::Result<KeyEncryptionKey> {
    use secrecy::ExposeSecret;
    let in_use = crate::pki::key_store::kek_ids_in_use(pool).await?;
    let (kek, from) = if let Some(key) = &config.keys.encryption_key {
        let kek = KeyEncryptionKey::from_base64(key.expose_secret())
            .context("keys.encryption_key is not usable")?;
        (kek, "keys.encryption_key".to_owned())
    } else {
        let path = config
            .keys
            .encryption_key_file
            .clone()
            .unwrap_or_else(|| state_dir().join("key-encryption-key"));
        if path.is_file() {
            refuse_if_shared(&path)?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("could not read {}", path.display()))?;
            let kek = KeyEncryptionKey::from_base64(&text)
                .with_context(|| format!("{} does not hold a usable key", path.display()))?;
            (kek, path.display().to_string())
        } else if !in_use.is_empty() {
            anyhow::bail!(
                "the key-encryption key file {} is missing, and the database holds keys \
                 wrapped under {}: restore that key (the file, or keys.encryption_key). A new \
                 one is not generated, because it would lose every stored private key and the \
                 embedded CA",
                path.display(),
                in_use.join(", ")
            );
        } else {
            let text = KeyEncryptionKey::generate_base64()?;
            if let Some(parent) = path.parent() {
                create_key_dir(parent)?;
            }
            write_owner_only(&path, &text)?;
            if config.database.url.is_some() {
                tracing::warn!(
                    path = %path.display(),
                    "generated a key-encryption key on this machine; with a shared database \
                     every replica needs the same key: set CERT_ASSISTANT_KEYS__ENCRYPTION_KEY"
                );
            } else {
                tracing::info!(path = %path.display(), "generated a key-encryption key");
            }
            let kek =
                KeyEncryptionKey::from_base64(&text).context("the generated key is not usable")?;
            (kek, path.display().to_string())
        }
    };
    let foreign: Vec<&str> = in_use
        .iter()
        .map(String::as_str)
        .filter(|id| *id != kek.id())
        .collect();
    if !foreign.is_empty() {
        anyhow::bail!(
            "the key-encryption key from {from} is {}, but the database holds keys wrapped \
             under {}: give the service that key (keys.encryption_key or \
             keys.encryption_key_file)",
            kek.id(),
            foreign.join(", ")
        );
    }
    Ok(kek)
}

/// A key file others can read is not used.
fn refuse_if_shared(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("could not read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} can be read by others (mode {:o}); make it its owner's only: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// The key file's directory, if it has to be made: nobody else may list it (0711). It is not
/// 0700 because by default it is the service's state directory, which the private cluster
/// shares: as root, the `postgres` user must pass through it to reach its data directory.
/// The key file itself is 0600.
fn create_key_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(dir)
        // Whatever the umask took away.
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)))
        .with_context(|| format!("could not create {}", dir.display()))
}

/// Creates `path` (owner-only) with `text`, and syncs it and its directory, so a crash
/// right after cannot lose the key while the database keeps what it wrapped.
fn write_owner_only(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("could not sync {}", dir.display()))?;
    }
    Ok(())
}

/// The service's own directory on this machine (`~/.local/share/cert-assistant`, or
/// `/var/lib/cert-assistant` as root): home of the private cluster, the generated key and the
/// local artifact store.
pub fn state_dir() -> std::path::PathBuf {
    let root = private_cluster::default_root();
    root.parent()
        .map_or_else(|| root.clone(), std::path::Path::to_path_buf)
}

/// The artifact store the configuration names: S3 when `storage.s3_bucket` is set,
/// otherwise the local directory.
pub async fn artifact_store(
    config: &Config,
) -> std::sync::Arc<dyn crate::adapters::artifacts::ArtifactStore> {
    if let Some(bucket) = &config.storage.s3_bucket {
        let store = crate::adapters::s3::S3ArtifactStore::new(crate::adapters::s3::S3Settings {
            bucket: bucket.clone(),
            region: config.storage.s3_region.clone(),
            endpoint: config.storage.s3_endpoint.clone(),
            force_path_style: config.storage.s3_force_path_style,
            server_side_encryption: config.storage.s3_server_side_encryption.clone(),
            kms_key_id: config.storage.s3_kms_key_id.clone(),
        })
        .await;
        return std::sync::Arc::new(store);
    }
    let dir = config
        .storage
        .local_dir
        .clone()
        .unwrap_or_else(|| state_dir().join("artifacts"));
    std::sync::Arc::new(crate::adapters::artifacts::LocalArtifactStore::new(dir))
}

/// The mailer the configuration names: SES or the local `.eml` directory.
pub async fn mailer(config: &Config) -> std::sync::Arc<dyn crate::adapters::mail::Mailer> {
    if config.mail.transport == crate::config::MailTransport::Ses {
        return std::sync::Arc::new(
            crate::adapters::mail::SesMailer::new(
                config.mail.ses_region.clone(),
                config.mail.ses_endpoint.clone(),
            )
            .await,
        );
    }
    let dir = config
        .mail
        .local_dir
        .clone()
        .unwrap_or_else(|| state_dir().join("mail"));
    std::sync::Arc::new(crate::adapters::mail::LocalMailer::new(dir))
}

/// Keeps the audit trail's partitions ahead and archives what is past retention, every six
/// hours, until `stopped` turns true. Safe on every replica (advisory locks inside).
pub async fn maintain_audit_trail(
    pool: PgPool,
    store: std::sync::Arc<dyn crate::adapters::artifacts::ArtifactStore>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    use crate::projections::retention;
    loop {
        match retention::ensure_partitions(&pool, 3).await {
            Ok(created) if !created.is_empty() => {
                tracing::info!(?created, "audit partitions created");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(error = format!("{error:#}"), "audit partitions"),
        }
        let archived = async {
            let days = retention::retention_days(&pool).await?;
            retention::archive(&pool, store.as_ref(), retention::cutoff_for(days), 10_000).await
        }
        .await;
        match archived {
            Ok(report) if report.rows_archived > 0 => tracing::info!(
                rows = report.rows_archived,
                files = report.files.len(),
                "audit rows archived"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(error = format!("{error:#}"), "audit archive failed"),
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(6 * 60 * 60)) => {}
        }
    }
}

/// The chat platforms the configuration sets up, in the order their notifiers are built.
pub fn chat_platforms(config: &Config) -> Vec<&'static str> {
    let slack = config.slack.signing_secret.is_some() && config.slack.bot_token.is_some();
    let discord = config.discord.public_key.is_some()
        && config.discord.application_id.is_some()
        && config.discord.bot_token.is_some();
    let teams = config.teams.app_id.is_some() && config.teams.app_password.is_some();
    [("slack", slack), ("discord", discord), ("teams", teams)]
        .into_iter()
        .filter_map(|(name, configured)| configured.then_some(name))
        .collect()
}

/// The Slack surface, when the configuration has Slack's secrets.
pub fn slack_state(
    config: &Config,
    chat: crate::chat::service::ChatService,
) -> Option<crate::chat::slack::SlackState> {
    use secrecy::ExposeSecret;
    let (Some(secret), Some(token)) = (&config.slack.signing_secret, &config.slack.bot_token)
    else {
        tracing::info!("Slack is not configured (no signing secret and bot token)");
        return None;
    };
    Some(crate::chat::slack::SlackState::new(
        crate::chat::slack::verify::Verifier::new(secret.expose_secret()),
        crate::chat::slack::api::SlackApi::new(&config.slack.api_base_url, token.clone()),
        chat,
    ))
}

/// Discord's state when it is configured (the configuration was validated on load).
pub fn discord_state(
    config: &Config,
    chat: crate::chat::service::ChatService,
    mailer: std::sync::Arc<dyn crate::adapters::mail::Mailer>,
) -> anyhow::Result<Option<crate::chat::discord::DiscordState>> {
    let (Some(key), Some(application_id), Some(token)) = (
        &config.discord.public_key,
        &config.discord.application_id,
        &config.discord.bot_token,
    ) else {
        tracing::info!("Discord is not configured");
        return Ok(None);
    };
    let verifier = crate::chat::discord::verify::Verifier::new(key.bytes())
        .context("discord.public_key is not an Ed25519 public key")?;
    Ok(Some(crate::chat::discord::DiscordState::new(
        verifier,
        crate::chat::discord::api::DiscordApi::new(
            &config.discord.api_base_url,
            application_id,
            token.clone(),
        ),
        chat,
        mailer,
    )))
}

/// Teams' state when the bot is configured.
pub fn teams_state(
    config: &Config,
    chat: crate::chat::service::ChatService,
) -> Option<crate::chat::teams::TeamsState> {
    let (Some(app_id), Some(password)) = (&config.teams.app_id, &config.teams.app_password) else {
        tracing::info!("Teams is not configured");
        return None;
    };
    let api = crate::chat::teams::api::TeamsApi::new(
        app_id,
        password.clone(),
        &config.teams.token_endpoint(),
    );
    let graph = config.teams.proactive.then(|| {
        crate::chat::teams::graph::Graph::new(
            api.http().clone(),
            &config.teams.graph_url,
            app_id,
            password.clone(),
            &config.teams.graph_token_url,
        )
    });
    Some(crate::chat::teams::TeamsState::new(
        crate::chat::teams::auth::Authenticator::new(
            &config.teams.openid_metadata_url,
            &config.teams.issuer,
            app_id,
        ),
        api,
        chat,
        config.teams.served_tenants(),
        crate::chat::teams::Reaching {
            graph,
            service_url: config.teams.service_url.clone(),
        },
    ))
}

/// The chat service every platform shares: one gate for the commands of the process.
pub fn chat_service(
    config: &Config,
    commands: crate::commands::Commands,
) -> crate::chat::service::ChatService {
    crate::chat::service::ChatService::new(commands)
        .with_public_url(&public_url(config))
        .with_admission(crate::chat::admission::Admission::new(
            config.chat.max_in_flight as usize,
            std::time::Duration::from_millis(config.chat.busy_after_ms),
        ))
}

/// The URL people reach the service at (`http.public_url`, else `http://` + `http.listen`).
pub fn public_url(config: &Config) -> String {
    config
        .http
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.http.listen))
}

/// The organisation's identity provider, when `auth.oidc_*` set one up (its discovery
/// document is read on the first sign-in, not now).
pub fn identity_provider(
    config: &Config,
) -> anyhow::Result<Option<std::sync::Arc<crate::adapters::oidc::IdentityProvider>>> {
    let auth = &config.auth;
    let (Some(issuer), Some(client_id), Some(secret)) = (
        &auth.oidc_issuer_url,
        &auth.oidc_client_id,
        &auth.oidc_client_secret,
    ) else {
        return Ok(None);
    };
    let redirect = format!(
        "{}/dashboard/oidc/callback",
        public_url(config).trim_end_matches('/')
    );
    let provider = crate::adapters::oidc::IdentityProvider::new(
        issuer,
        client_id,
        secret.clone(),
        &redirect,
        auth.oidc_name.as_deref().unwrap_or("your organisation"),
    )
    .context("auth.oidc_issuer_url or the redirect URL is not a URL")?;
    Ok(Some(std::sync::Arc::new(provider)))
}

/// Where certificates point for the CRL.
pub fn crl_url(config: &Config) -> String {
    config
        .ca
        .crl_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/ca/crl.der", config.http.listen))
}

/// The command service as the configuration says: its admins, and whether a public CA is
/// configured.
pub fn commands(config: &Config, pool: PgPool, kek: KeyEncryptionKey) -> crate::commands::Commands {
    crate::commands::Commands::with_public_ca(pool, kek, &config.auth.admins, config.acm.enabled)
}

/// The public CA, ACM, when `acm.enabled` (with `credentials` instead of the AWS chain's,
/// when given).
pub async fn public_certificate_authority(
    config: &Config,
    pool: &PgPool,
    credentials: Option<crate::adapters::aws::Credentials>,
) -> Option<std::sync::Arc<dyn crate::adapters::ca::CertificateAuthority>> {
    if !config.acm.enabled {
        return None;
    }
    let zones = if config.acm.route53_zone_ids.is_empty() {
        None
    } else {
        Some(
            crate::adapters::ca::acm::Route53Zones::new(
                config.acm.route53_zone_ids.clone(),
                config.acm.route53_endpoint.clone(),
                credentials.clone(),
            )
            .await,
        )
    };
    let acm = crate::adapters::ca::acm::AcmCa::new(
        config.acm.region.clone(),
        config.acm.endpoint.clone(),
        credentials,
    )
    .await
    .with_route53(zones);
    tracing::info!("requests for the public CA go to AWS Certificate Manager");
    Some(Measured::wrap(
        "acm",
        std::sync::Arc::new(acm),
        std::sync::Arc::new(super::CaCalls::new(pool.clone())),
    ))
}

/// The ADCS Web Enrollment client the configuration describes, when `adcs.url` is set.
pub fn adcs_client(
    config: &Config,
) -> anyhow::Result<Option<crate::adapters::ca::adcs::AdcsClient>> {
    use crate::adapters::ca::adcs::{AdcsSettings, Authentication};
    use secrecy::ExposeSecret;
    let Some(url) = &config.adcs.url else {
        return Ok(None);
    };
    let read = |path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
        path.as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .with_context(|| format!("could not read {}", p.display()))
            })
            .transpose()
    };
    let client = crate::adapters::ca::adcs::AdcsClient::new(AdcsSettings {
        url: url.clone(),
        authentication: match config.adcs.auth {
            crate::config::AdcsAuth::Basic => Authentication::Basic,
            crate::config::AdcsAuth::Ntlm => Authentication::Ntlm,
        },
        username: config.adcs.username.clone().unwrap_or_default(),
        password: config
            .adcs
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned())
            .unwrap_or_default()
            .into(),
        ca_bundle_pem: read(&config.adcs.ca_bundle)?,
        client_identity_pem: read(&config.adcs.client_identity)?.map(Into::into),
        timeout: std::time::Duration::from_secs(config.adcs.timeout_seconds.unwrap_or(30)),
        templates: config.adcs.templates.clone(),
        revoke_hook: crate::adapters::ca::revoke_hook::RevokeHook::new(
            config.adcs.revoke_command.clone(),
            std::time::Duration::from_secs(config.adcs.revoke_timeout_seconds.unwrap_or(120)),
        ),
    })
    .context("could not set up the ADCS client")?;
    Ok(Some(client))
}

/// The certificate authority the configuration names: ADCS when `adcs.url` is set,
/// otherwise the embedded CA (also returned, for its CRL and chain routes).
pub async fn certificate_authority(
    config: &Config,
    pool: &PgPool,
    kek: &KeyEncryptionKey,
) -> anyhow::Result<(
    std::sync::Arc<dyn crate::adapters::ca::CertificateAuthority>,
    Option<std::sync::Arc<crate::adapters::ca::embedded::EmbeddedCa>>,
)> {
    if let Some(client) = adcs_client(config)? {
        let url = config.adcs.url.as_deref().unwrap_or_default();
        tracing::info!(%url, "issuing through ADCS Web Enrollment");
        let log = std::sync::Arc::new(super::CaCalls::new(pool.clone()));
        return Ok((
            Measured::wrap("adcs", std::sync::Arc::new(client), log),
            None,
        ));
    }
    let ca = std::sync::Arc::new(
        crate::adapters::ca::embedded::EmbeddedCa::load_or_create(pool, kek, &crl_url(config))
            .await?,
    );
    let log = std::sync::Arc::new(super::CaCalls::new(pool.clone()));
    Ok((Measured::wrap("embedded", ca.clone(), log), Some(ca)))
}
