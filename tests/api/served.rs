//! The real `cert-assistant serve`, as a child process, driven over signed Slack requests:
//! for the tests that need the binary itself (killed at random, stopped by a signal, its
//! process-wide telemetry).

use std::process::{Child, Stdio};
use std::time::Duration;

use aws_lc_rs::hmac;

use crate::fixtures::{KEK, approver, service};
use crate::helpers::TestDb;

const SECRET: &str = "served-signing-secret";

/// Slack's `v0=` signature of `body` at `timestamp` with the served secret.
fn signed(timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// John (Slack user UJOHN) and Jane (UJANE, an approver) of team T1, known to the service.
pub async fn people(db: &TestDb) {
    approver(&service(db), "jane@example.com").await;
    sqlx::query(
        "INSERT INTO chat_identities (platform, workspace_id, user_id, email) VALUES \
         ('slack', 'T1', 'UJOHN', 'john@example.com'), ('slack', 'T1', 'UJANE', 'jane@example.com')",
    )
    .execute(&db.pool)
    .await
    .expect("identities");
}

/// A free port on the loopback interface.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    listener.local_addr().expect("addr").port()
}

/// A running `cert-assistant serve`.
pub struct Served {
    /// The process.
    pub child: Child,
    url: String,
    http: reqwest::Client,
}

impl Served {
    /// Starts `serve` on `port` over `db`, keeping files under `dir`, with Slack enabled
    /// (its Web API unreachable) and `env` added; the environment's own settings are left out.
    pub fn start(db: &TestDb, dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Self {
        let child = crate::helpers::binary()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", db.url())
            .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", KEK)
            .env("CERT_ASSISTANT_AUTH__ADMINS", "root@example.com")
            .env("CERT_ASSISTANT_SLACK__SIGNING_SECRET", SECRET)
            .env("CERT_ASSISTANT_SLACK__BOT_TOKEN", "xoxb-served")
            .env(
                "CERT_ASSISTANT_SLACK__API_BASE_URL",
                "http://127.0.0.1:9/api",
            )
            .env("CERT_ASSISTANT_STORAGE__LOCAL_DIR", dir.join("artifacts"))
            .env("CERT_ASSISTANT_MAIL__LOCAL_DIR", dir.join("mail"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the service starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    /// Its base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits until it answers `/readyz`.
    pub async fn ready(&self) {
        for _ in 0..200 {
            if self
                .http
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not become ready");
    }

    async fn post_signed(&self, path: &str, body: String) -> Option<reqwest::Response> {
        let now = chrono::Utc::now().timestamp();
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", now.to_string())
            .header("x-slack-signature", signed(now, &body))
            .body(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()
    }

    /// `/cert <text>` from Slack user `user` of team T1; the reply, when one came.
    pub async fn cert(&self, user: &str, text: &str) -> Option<String> {
        let body = format!(
            "token=x&team_id=T1&team_domain=served&channel_id=C1&channel_name=c&user_id={user}\
             &user_name={user}&command=%2Fcert&text={}&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fr\
             &trigger_id=t",
            form(text)
        );
        let response = self.post_signed("/slack/commands", body).await?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// Slack user `user` clicks the button `action` (`approve`, …) of request `number`;
    /// whether it was acknowledged.
    pub async fn click(&self, user: &str, action: &str, number: &str) -> bool {
        let payload = serde_json::json!({
            "type": "block_actions",
            "team": { "id": "T1" },
            "user": { "id": user, "team_id": "T1" },
            "trigger_id": "t",
            "response_url": "http://127.0.0.1:9/r",
            "message": { "blocks": [] },
            "actions": [ { "action_id": action, "value": number } ],
        });
        let body = format!("payload={}", form(&payload.to_string()));
        self.post_signed("/slack/interactivity", body)
            .await
            .is_some_and(|r| r.status().is_success())
    }

    /// Stops it as an operator would (SIGTERM) and waits for it to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        self.child.wait().expect("stopped")
    }
}

fn form(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
