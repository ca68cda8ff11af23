//! Slack, driven the way Slack drives it: signed form posts over real HTTP to the service,
//! and a local server that speaks the Web API methods the service calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use cert_assistant::app::{Outbound, Workers};
use cert_assistant::chat::outbound::ChatNotifier;
use cert_assistant::config::Config;
use cert_assistant::domain::actor::Role;
use cert_assistant::domain::values::Email;
use cert_assistant::feed::Projector;
use serde_json::{Value, json};

use crate::fixtures::{ctx, service};
use crate::helpers::{Background, TestDb, eventually};

const SECRET: &str = "test-signing-secret";

/// What the fake Slack saw: (method or path, body).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

#[derive(Clone)]
struct FakeSlack {
    users: Arc<HashMap<String, Option<String>>>,
    calls: Calls,
}

async fn web_api(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let serial = {
        let mut calls = fake.calls.lock().expect("lock");
        calls.push((method.clone(), body.clone()));
        calls.len()
    };
    Json(match method.as_str() {
        "users.info" => {
            let id = body["user"].as_str().unwrap_or_default();
            match fake.users.get(id) {
                Some(email) => json!({
                    "ok": true,
                    "user": { "id": id, "profile": { "email": email, "real_name": id } }
                }),
                None => json!({ "ok": false, "error": "user_not_found" }),
            }
        }
        "users.lookupByEmail" => {
            let email = body["email"].as_str().unwrap_or_default();
            match fake.users.iter().find(|(_, e)| e.as_deref() == Some(email)) {
                Some((id, _)) => json!({ "ok": true, "user": { "id": id, "team_id": "T1" } }),
                None => json!({ "ok": false, "error": "users_not_found" }),
            }
        }
        "chat.postMessage" => json!({ "ok": true, "ts": format!("1700000000.{serial:06}") }),
        "conversations.open" => json!({
            "ok": true,
            "channel": { "id": format!("D-{}", body["users"].as_str().unwrap_or_default()) }
        }),
        _ => json!({ "ok": true }),
    })
}

async fn response_url(
    State(fake): State<FakeSlack>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    fake.calls
        .lock()
        .expect("lock")
        .push((format!("response/{id}"), body));
    Json(json!({ "ok": true }))
}

pub(crate) struct SlackTest {
    pub(crate) workers: Workers,
    pub(crate) db: TestDb,
    pub(crate) app: String,
    fake: String,
    calls: Calls,
    http: reqwest::Client,
    _files: tempfile::TempDir,
}

async fn slack_app() -> SlackTest {
    slack_app_on(TestDb::new().await).await
}

/// Slack over an existing test database.
pub(crate) async fn slack_app_on(db: TestDb) -> SlackTest {
    slack_app_with(db, |_| {}).await
}

/// Slack over an existing test database, with `also` configuring more (other platforms).
pub(crate) async fn slack_app_with(db: TestDb, also: impl FnOnce(&mut Config)) -> SlackTest {
    slack_app_started(db, also, Background::Stepped, Outbound::default()).await
}

/// Slack over an existing test database, with `also` configuring more and `outbound`
/// swapped in (AWS credentials for ACM).
pub(crate) async fn slack_app_outbound(
    db: TestDb,
    also: impl FnOnce(&mut Config),
    outbound: Outbound,
) -> SlackTest {
    slack_app_started(db, also, Background::Stepped, outbound).await
}

/// Slack on a service whose `background` runs as given.
pub(crate) async fn slack_app_started(
    db: TestDb,
    also: impl FnOnce(&mut Config),
    background: Background,
    outbound: Outbound,
) -> SlackTest {
    let users: HashMap<String, Option<String>> = [
        ("UJOHN", Some("john@example.com")),
        ("UJANE", Some("jane@example.com")),
        ("UROOT", Some("root@example.com")),
        ("UOPS", Some("ops@example.com")),
        ("UNOMAIL", None),
    ]
    .into_iter()
    .map(|(id, email)| (id.to_owned(), email.map(str::to_owned)))
    .collect();
    let calls: Calls = Arc::default();
    let fake = FakeSlack {
        users: Arc::new(users),
        calls: calls.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake_url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = Router::new()
        .route("/api/{method}", post(web_api))
        .route("/response/{id}", post(response_url))
        .with_state(fake);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let files = crate::helpers::test_files();
    let mut config = crate::helpers::test_config(files.path());
    config.slack.signing_secret = Some(SECRET.to_owned().into());
    config.slack.bot_token = Some("xoxb-test".to_owned().into());
    config.slack.api_base_url = format!("{fake_url}/api");
    also(&mut config);
    let (app, workers) = crate::helpers::start_with(&db.pool, &config, background, outbound).await;
    SlackTest {
        workers,
        db,
        app,
        fake: fake_url,
        calls,
        http: reqwest::Client::new(),
        _files: files,
    }
}

fn sign(timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl SlackTest {
    pub(crate) async fn post_signed(
        &self,
        path: &str,
        body: String,
        timestamp: i64,
        signature: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.app))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await
            .expect("the request reaches the service")
    }

    async fn post(&self, path: &str, body: String) -> reqwest::Response {
        let now = chrono::Utc::now().timestamp();
        let signature = sign(now, &body);
        self.post_signed(path, body, now, &signature).await
    }

    /// A signed post to the Events API route, as Slack sends it (JSON).
    async fn post_event(&self, body: &Value) -> reqwest::Response {
        let body = body.to_string();
        let now = chrono::Utc::now().timestamp();
        self.http
            .post(format!("{}/slack/events", self.app))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", now.to_string())
            .header("x-slack-signature", sign(now, &body))
            .body(body)
            .send()
            .await
            .expect("reaches the service")
    }

    /// A signed Events API callback.
    async fn event(&self, event: Value) -> reqwest::Response {
        self.post_event(&json!({ "type": "event_callback", "team_id": "T1", "event": event }))
            .await
    }

    /// `user` opens the bot's Home tab; the page then published for them.
    async fn open_home(&self, user: &str) -> Value {
        let before = self.homes_of(user).len();
        let response = self
            .event(
                json!({ "type": "app_home_opened", "user": user, "channel": "D1", "tab": "home" }),
            )
            .await;
        assert_eq!(response.status(), 200);
        self.next_home(user, before).await
    }

    /// Every page published for `user`, oldest first.
    fn homes_of(&self, user: &str) -> Vec<Value> {
        self.calls_to("views.publish")
            .into_iter()
            .filter(|c| c["user_id"] == user)
            .map(|c| c["view"].clone())
            .collect()
    }

    /// The page published for `user` after the `before`-th.
    async fn next_home(&self, user: &str, before: usize) -> Value {
        for _ in 0..250 {
            if let Some(view) = self.homes_of(user).get(before) {
                return view.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no Home tab was published for {user}");
    }

    pub(crate) fn command_body(&self, user: &str, text: &str) -> String {
        form(&[
            ("token", "ignored"),
            ("team_id", "T1"),
            ("team_domain", "example"),
            ("channel_id", "C1"),
            ("channel_name", "certs"),
            ("user_id", user),
            ("user_name", user),
            ("command", "/cert"),
            ("text", text),
            ("response_url", &format!("{}/response/cmd", self.fake)),
            ("trigger_id", "trigger-1"),
        ])
    }

    pub(crate) async fn cert(&self, user: &str, text: &str) -> Value {
        let response = self
            .post("/slack/commands", self.command_body(user, text))
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json reply")
    }

    pub(crate) async fn interact(&self, payload: Value) -> reqwest::Response {
        let body = form(&[("payload", &payload.to_string())]);
        self.post("/slack/interactivity", body).await
    }

    /// [`interact`](Self::interact), and the JSON the service answered.
    async fn answer(&self, payload: Value) -> Value {
        self.interact(payload).await.json().await.expect("json")
    }

    /// The Slack notifier the service was built with.
    pub(crate) fn notifier(&self) -> &ChatNotifier {
        self.workers.notifier("slack").expect("Slack is configured")
    }

    pub(crate) fn calls_to(&self, name: &str) -> Vec<Value> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Waits for a background reply to reach the response URL.
    pub(crate) async fn wait_for_response(&self, id: &str, count: usize) -> Vec<Value> {
        for _ in 0..200 {
            let seen = self.calls_to(&format!("response/{id}"));
            if seen.len() >= count {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no response to {id} arrived");
    }

    pub(crate) fn button(
        &self,
        user: &str,
        action: &str,
        number: &str,
        response_id: &str,
    ) -> Value {
        json!({
            "type": "block_actions",
            "team": { "id": "T1" },
            "user": { "id": user, "team_id": "T1" },
            "trigger_id": "trigger-2",
            "response_url": format!("{}/response/{response_id}", self.fake),
            "message": { "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": number } },
                { "type": "actions", "elements": [] },
            ] },
            "actions": [ { "action_id": action, "value": number } ],
        })
    }
}

pub(crate) fn text_of(reply: &Value) -> String {
    reply.to_string()
}

#[tokio::test]
async fn help_answers_a_signed_slash_command_privately() {
    let t = slack_app().await;
    let reply = t.cert("UJOHN", "help").await;
    assert_eq!(reply["response_type"], "ephemeral");
    assert!(text_of(&reply).contains("/cert request"), "{reply}");
}

#[tokio::test]
async fn forged_stale_and_unsigned_requests_are_turned_away_and_change_nothing() {
    let t = slack_app().await;
    let body = t.command_body("UJOHN", "request cn=app.example.com why=x");
    let now = chrono::Utc::now().timestamp();
    let forged = t
        .post_signed(
            "/slack/commands",
            body.clone(),
            now,
            &sign(now, "something else"),
        )
        .await;
    assert_eq!(forged.status(), 401);
    let stale = t
        .post_signed(
            "/slack/commands",
            body.clone(),
            now - 600,
            &sign(now - 600, &body),
        )
        .await;
    assert_eq!(stale.status(), 400);
    let unsigned = t
        .http
        .post(format!("{}/slack/commands", t.app))
        .header("x-slack-request-timestamp", now.to_string())
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(unsigned.status(), 401);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&t.db.pool)
        .await
        .expect("count");
    assert_eq!(events, 0, "nothing was recorded");
    assert!(
        t.calls_to("users.info").is_empty(),
        "nothing was even looked up"
    );
}

#[tokio::test]
async fn ssl_checks_and_url_verification_are_answered() {
    let t = slack_app().await;
    let check = t
        .http
        .post(format!("{}/slack/commands", t.app))
        .body("ssl_check=1&token=x")
        .send()
        .await
        .expect("send");
    assert_eq!(check.status(), 200);
    let response = t
        .post_event(&json!({ "type": "url_verification", "challenge": "abc123", "token": "x" }))
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["challenge"], "abc123");
}

#[tokio::test]
async fn a_request_in_one_line_then_an_approval_by_button_updates_the_message() {
    let t = slack_app().await;
    let commands = service(&t.db);
    crate::fixtures::approver(&commands, "jane@example.com").await;

    let reply = t
        .cert(
            "UJOHN",
            "request cn=app.example.com san=www.example.com days=90 why=\"Customer portal\"",
        )
        .await;
    let text = text_of(&reply);
    let number = crate::helpers::request_number_in(&text);
    // Looked up once, then cached.
    t.cert("UJOHN", &format!("status {number}")).await;
    assert_eq!(t.calls_to("users.info").len(), 1);

    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let queue = t.cert("UJANE", "approvals").await;
    assert!(
        text_of(&queue).contains(&format!("\"value\":\"{number}\"")),
        "{queue}"
    );
    let refused = t.cert("UJOHN", "approvals").await;
    assert!(text_of(&refused).contains("only approvers"), "{refused}");

    // The requester clicks Approve on his own request: a polite refusal, message untouched.
    let response = t
        .interact(t.button("UJOHN", "approve", &number, "self"))
        .await;
    assert_eq!(response.status(), 200);
    let answers = t.wait_for_response("self", 1).await;
    assert_eq!(answers[0]["replace_original"], false);
    assert!(
        text_of(&answers[0]).contains("your own request"),
        "{}",
        answers[0]
    );

    // Jane approves: the message is replaced, without buttons, saying who and when.
    t.interact(t.button("UJANE", "approve", &number, "jane"))
        .await;
    let answers = t.wait_for_response("jane", 1).await;
    assert_eq!(answers[0]["replace_original"], true);
    assert!(
        text_of(&answers[0]).contains("Approved by jane@example.com"),
        "{}",
        answers[0]
    );
    assert!(!text_of(&answers[0]).contains("\"actions\""));

    // A second click learns who decided.
    t.interact(t.button("UROOT", "approve", &number, "late"))
        .await;
    let answers = t.wait_for_response("late", 1).await;
    assert!(
        text_of(&answers[0]).contains("already approved by jane@example.com"),
        "{}",
        answers[0]
    );

    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let status: String =
        sqlx::query_scalar("SELECT status FROM certificate_requests WHERE request_number = $1")
            .bind(&number)
            .fetch_one(&t.db.pool)
            .await
            .expect("request");
    assert_eq!(status, "approved");
    let refusals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE result = 'failure' AND event_category = 'authorization'",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("audit");
    assert!(
        refusals >= 2,
        "the self-approval and the approvals list refusal are audited"
    );
}

#[tokio::test]
async fn reject_asks_for_a_reason_in_a_modal() {
    let t = slack_app().await;
    crate::fixtures::approver(&service(&t.db), "jane@example.com").await;
    let reply = t
        .cert("UJOHN", "request cn=no.example.com why=testing days=90")
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    t.interact(t.button("UJANE", "reject", &number, "reject"))
        .await;
    let opened = t.calls_to("views.open");
    assert_eq!(opened.len(), 1);
    let view = &opened[0]["view"];
    assert_eq!(view["callback_id"], "reject");
    let submission = |reason: &str| {
        json!({
            "type": "view_submission",
            "team": { "id": "T1" },
            "user": { "id": "UJANE", "team_id": "T1" },
            "view": {
                "callback_id": "reject",
                "private_metadata": view["private_metadata"],
                "state": { "values": { "reason": { "value": { "type": "plain_text_input", "value": reason } } } },
            },
        })
    };
    let empty: Value = t.answer(submission("  ")).await;
    assert_eq!(empty["response_action"], "errors");
    assert_eq!(empty["errors"]["reason"], "A rejection needs a reason.");
    let done = t.interact(submission("wrong team <!here>")).await;
    assert_eq!(done.status(), 200);
    let answers = t.wait_for_response("reject", 1).await;
    assert!(
        text_of(&answers[0]).contains("Rejected by jane@example.com"),
        "{}",
        answers[0]
    );
    // The reason she typed cannot ping anyone.
    assert!(text_of(&answers[0]).contains("wrong team &lt;!here&gt;"));
    assert!(!text_of(&answers[0]).contains("<!here>"));
    let view = t.cert("UJOHN", &format!("status {number}")).await;
    assert!(text_of(&view).contains("rejected"), "{view}");
    // The reason is recorded as typed (escaping is how Slack shows it, not what it is).
    crate::helpers::project(&t.db.pool).await;
    let recorded: Option<String> =
        sqlx::query_scalar("SELECT comments FROM approvals WHERE status = 'rejected'")
            .fetch_one(&t.db.pool)
            .await
            .expect("approval");
    assert_eq!(recorded.as_deref(), Some("wrong team <!here>"));
}

#[tokio::test]
async fn someone_without_a_visible_email_is_told_why() {
    let t = slack_app().await;
    let reply = t.cert("UNOMAIL", "list").await;
    assert!(text_of(&reply).contains("users:read.email"), "{reply}");
    let reply = t.cert("UNKNOWN", "list").await;
    assert!(text_of(&reply).contains("try again"), "{reply}");
}

#[tokio::test]
async fn help_and_recommend_answer_while_slack_cannot_say_who_asks_and_the_rest_say_so() {
    // Slack's Web API is unreachable: nobody can be looked up.
    let t = slack_app_with(TestDb::new().await, |config| {
        config.slack.api_base_url = "http://127.0.0.1:9/api".to_owned();
    })
    .await;
    let help = t.cert("UJOHN", "help").await;
    assert!(text_of(&help).contains("/cert request"), "{help}");
    assert!(text_of(&help).contains("Names you may request"), "{help}");
    let recommended = t
        .cert(
            "UJOHN",
            "recommend public=yes browser=yes lifespan=1_to_2_years compliance=PCI_DSS",
        )
        .await;
    assert!(
        text_of(&recommended).contains("*public* CA"),
        "{recommended}"
    );
    for command in [
        "list",
        "status REQ-20261203-00001",
        "request cn=app.example.com why=x",
    ] {
        let refused = text_of(&t.cert("UJOHN", command).await);
        assert!(refused.contains("nothing was done"), "{command}: {refused}");
        assert!(
            refused.contains("`/cert help` answers meanwhile"),
            "{command}: {refused}"
        );
    }
    // Nobody was registered and nothing was recorded.
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&t.db.pool)
        .await
        .expect("events");
    assert_eq!(events, 0);
}

#[tokio::test]
async fn malformed_commands_get_a_usage_message() {
    let t = slack_app().await;
    let reply = t.cert("UJOHN", "reject REQ-20261127-00001").await;
    assert!(text_of(&reply).contains("a reason is required"), "{reply}");
    let reply = t.cert("UJOHN", "launch rockets").await;
    assert!(text_of(&reply).contains("/cert help"), "{reply}");
}

#[tokio::test]
async fn a_configured_slack_app_asks_its_approvers_in_the_service_as_serve_runs_it() {
    // Nothing stepped by hand: the feed consumers and the notifiers run as in production.
    let t = slack_app_started(
        TestDb::new().await,
        |_| {},
        Background::Running,
        Outbound::default(),
    )
    .await;
    crate::fixtures::approver(&service(&t.db), "jane@example.com").await;
    let within = std::time::Duration::from_secs(30);
    crate::helpers::until_known_as_approver(&t.db.pool, "jane@example.com").await;
    let reply = t
        .cert(
            "UJOHN",
            "request cn=wired.example.com days=90 why=\"Portal\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    let asked = || {
        t.calls_to("chat.postMessage")
            .into_iter()
            .any(|m| m["channel"] == "D-UJANE" && text_of(&m).contains(&number))
    };
    eventually("Jane gets a DM with the buttons", within, || async {
        asked()
    })
    .await;
}

#[tokio::test]
async fn an_approver_sees_every_name_and_field_the_certificate_will_carry() {
    let t = slack_app().await;
    crate::fixtures::approver(&service(&t.db), "jane@example.com").await;
    crate::helpers::project(&t.db.pool).await;
    // Someone else's address is refused to a user...
    let mail = "request type=email cn=\"Chief Mail\" email=ceo@example.com org=Acme \
                ou=Finance l=Hamburg st=Hamburg c=DE days=365 \
                why=\"board mail <!channel> <https://evil.example|https://cert-assistant>\"";
    let refused = text_of(&t.cert("UJOHN", mail).await);
    assert!(
        refused.contains("the e-mail address must be your own (john@example.com)"),
        "{refused}"
    );
    // ...and shown for what it is when an admin asks.
    let reply = t.cert("UROOT", mail).await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    let outbox = Projector::for_consumer(t.db.pool.clone(), t.workers.outbox.clone());
    outbox
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");
    t.notifier().step().await.expect("deliver");
    let dm = t
        .calls_to("chat.postMessage")
        .into_iter()
        .find(|m| m["channel"] == "D-UJANE")
        .expect("jane is asked");
    let shown = text_of(&dm);
    assert!(shown.contains(&number), "{shown}");
    for expected in [
        "*Requester*\\nroot@example.com",
        "*Common name*\\nChief Mail",
        "*Type*\\nemail",
        "*CA*\\ninternal",
        "*Key*\\nECC_P256, generated here",
        "*E-mail*\\nceo@example.com (not the requester's own: asked for by an admin)",
        "*Organization (O)*\\nAcme",
        "*Unit (OU)*\\nFinance",
        "*Locality (L)*\\nHamburg",
        "*State (ST)*\\nHamburg",
        "*Country (C)*\\nDE",
        "*Why*\\nboard mail &lt;!channel&gt; &lt;https://evil.example|https://cert-assistant&gt;",
    ] {
        assert!(shown.contains(expected), "{expected} is not in {shown}");
    }
    // What the requester typed cannot ping the channel or mask a link.
    assert!(
        !shown.contains("<!channel>") && !shown.contains("<https://evil"),
        "{shown}"
    );
}

#[tokio::test]
async fn approvers_get_a_dm_with_buttons_and_every_copy_is_updated_after_the_decision() {
    let t = slack_app().await;
    crate::fixtures::approver(&service(&t.db), "jane@example.com").await;
    // Jane never used /cert: she is found by her e-mail.
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let reply = t
        .cert("UJOHN", "request cn=dm.example.com why=testing days=90")
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));

    let outbox = Projector::for_consumer(t.db.pool.clone(), t.workers.outbox.clone());
    let notifier = t.notifier();
    outbox
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");
    notifier.step().await.expect("deliver");
    let mut opened: Vec<String> = t
        .calls_to("conversations.open")
        .iter()
        .filter_map(|c| c["users"].as_str().map(str::to_owned))
        .collect();
    opened.sort();
    assert_eq!(
        opened,
        ["UJANE", "UROOT"],
        "both approvers (jane, and root as admin)"
    );
    let posted = t.calls_to("chat.postMessage");
    assert_eq!(posted.len(), 2, "one DM to each approver");
    let mut looked_up: Vec<String> = t
        .calls_to("users.lookupByEmail")
        .iter()
        .filter_map(|c| c["email"].as_str().map(str::to_owned))
        .collect();
    looked_up.sort();
    assert_eq!(looked_up, ["jane@example.com", "root@example.com"]);
    assert!(
        text_of(&posted[0]).contains(&format!("\"value\":\"{number}\"")),
        "{}",
        posted[0]
    );
    assert!(text_of(&posted[0]).contains("dm.example.com"));
    // Delivering again sends nothing twice.
    notifier.step().await.expect("idle");
    assert_eq!(t.calls_to("chat.postMessage").len(), 2);

    t.interact(t.button("UJANE", "approve", &number, "dm"))
        .await;
    let clicked = t.wait_for_response("dm", 1).await;
    outbox
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");
    notifier.step().await.expect("deliver");
    let updated = t.calls_to("chat.update");
    assert_eq!(updated.len(), 2, "every copy is updated");
    let posted_ts: Vec<&Value> = posted.iter().map(|p| &p["channel"]).collect();
    assert!(posted_ts.contains(&&updated[0]["channel"]));
    assert!(
        updated[0]["ts"]
            .as_str()
            .is_some_and(|ts| ts.starts_with("1700000000.")),
        "{}",
        updated[0]
    );
    assert!(
        text_of(&updated[0]).contains("Approved by jane@example.com"),
        "{}",
        updated[0]
    );
    assert!(
        text_of(&updated[0]).contains("dm.example.com"),
        "the decided copy keeps the request's details: {}",
        updated[0]
    );
    assert!(!text_of(&updated[0]).contains("\"actions\""));
    // One renderer: the clicked message and every other copy say the same.
    assert_eq!(
        clicked[0]["blocks"], updated[0]["blocks"],
        "the click's reply is the notifier's copy"
    );
    assert_eq!(clicked[0]["replace_original"], true);
    let told = t.calls_to("chat.postMessage");
    assert!(
        told.iter().any(|m| text_of(m).contains("is approved")),
        "the requester is told: {told:?}"
    );

    // Issued by the embedded CA: the requester hears about it in Slack too.
    Projector::for_consumer(
        t.db.pool.clone(),
        cert_assistant::saga::issuance::IssuanceFeed,
    )
    .catch_up(std::time::Duration::from_secs(30))
    .await
    .expect("feed");
    t.workers.issuance.step().await.expect("issued");
    outbox
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");
    notifier.step().await.expect("deliver");
    let told = t.calls_to("chat.postMessage");
    assert!(
        told.iter()
            .any(|m| text_of(m).contains("is issued (serial")),
        "the requester hears of the certificate: {told:?}"
    );
}

#[tokio::test]
async fn the_manifest_names_only_routes_we_serve_and_scopes_we_use() {
    use yaml_rust2::YamlLoader;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bot-manifest.yaml"),
    )
    .expect("bot-manifest.yaml");
    let manifest = &YamlLoader::load_from_str(&text).expect("valid YAML")[0];
    assert!(
        manifest["display_information"]["name"]
            .as_str()
            .is_some_and(|name| name.len() <= 35)
    );
    let bot_name = manifest["features"]["bot_user"]["display_name"]
        .as_str()
        .expect("bot name");
    assert_eq!(bot_name, bot_name.to_lowercase());
    let command = &manifest["features"]["slash_commands"][0];
    assert_eq!(command["command"].as_str(), Some("/cert"));
    assert!(command["description"].as_str().is_some());
    assert!(command["usage_hint"].as_str().is_some());

    // Every URL is a route the service answers (a signed, empty post gets past routing).
    let t = slack_app().await;
    let urls = [
        command["url"].as_str().expect("command url"),
        manifest["settings"]["interactivity"]["request_url"]
            .as_str()
            .expect("interactivity url"),
        manifest["settings"]["event_subscriptions"]["request_url"]
            .as_str()
            .expect("events url"),
    ];
    // The Home tab is on, and its event is what the events route answers.
    assert_eq!(
        manifest["features"]["app_home"]["home_tab_enabled"].as_bool(),
        Some(true)
    );
    let events: Vec<&str> = manifest["settings"]["event_subscriptions"]["bot_events"]
        .as_vec()
        .expect("bot events")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(events, ["app_home_opened"]);
    for url in urls {
        let path = url
            .strip_prefix("https://cert-assistant.example.com")
            .expect("the one placeholder host");
        let response = t.post(path, String::new()).await;
        assert_ne!(response.status(), 404, "{path} is not served");
        assert_ne!(response.status(), 401, "{path}");
    }

    // Every scope is used by the code, and every Web API method we call has its scope.
    let source: String = [
        "src/chat/slack/api.rs",
        "src/chat/slack/platform.rs",
        "src/chat/slack/mod.rs",
    ]
    .iter()
    .map(|f| {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
            .expect("source")
    })
    .collect();
    let scopes: Vec<&str> = manifest["oauth_config"]["scopes"]["bot"]
        .as_vec()
        .expect("scopes")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let evidence = [
        ("commands", "/slack/commands"),
        ("chat:write", "chat.postMessage"),
        ("im:write", "conversations.open"),
        ("users:read", "users.info"),
        ("users:read.email", "users.lookupByEmail"),
    ];
    for scope in &scopes {
        let (_, needle) = evidence
            .iter()
            .find(|(s, _)| s == scope)
            .unwrap_or_else(|| panic!("the manifest asks for {scope}, which nothing uses"));
        assert!(
            source.contains(needle),
            "{scope}: {needle} not found in the code"
        );
    }
    for (scope, needle) in evidence {
        if source.contains(needle) {
            assert!(
                scopes.contains(&scope),
                "the code uses {needle} but the manifest lacks {scope}"
            );
        }
    }
}

fn selected(value: &str) -> Value {
    json!({ "value": { "type": "static_select", "selected_option": { "value": value } } })
}

/// John submitting the modal `callback` with `values` (and the view's `metadata`).
fn submit(callback: &str, values: Value, metadata: &str) -> Value {
    json!({
        "type": "view_submission",
        "team": { "id": "T1" },
        "user": { "id": "UJOHN", "team_id": "T1" },
        "view": { "callback_id": callback, "private_metadata": metadata, "state": { "values": values } },
    })
}

fn typed(value: &str) -> Value {
    json!({ "value": { "type": "plain_text_input", "value": value } })
}

#[tokio::test]
async fn the_request_form_asks_recommends_and_shows_errors_next_to_fields() {
    let t = slack_app().await;
    let opened = t
        .post("/slack/commands", t.command_body("UJOHN", "request"))
        .await;
    assert_eq!(opened.status(), 200);
    let views = t.calls_to("views.open");
    assert_eq!(views[0]["trigger_id"], "trigger-1");
    assert_eq!(views[0]["view"]["callback_id"], "request_questionnaire");

    // A question left out is pointed at.
    let missing: Value = t
        .interact(submit(
            "request_questionnaire",
            json!({ "service_type": selected("web_server") }),
            "",
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(missing["response_action"], "errors");
    assert_eq!(
        missing["errors"]["publicly_accessible"],
        "please choose one"
    );

    let answers = json!({
        "service_type": selected("web_server"),
        "publicly_accessible": selected("yes"),
        "browser_trust_required": selected("yes"),
        "expected_lifespan": selected("90_to_365"),
        "environment_type": selected("production"),
        "certificate_count": selected("single"),
        "domain_type": selected("single"),
        "criticality_level": selected("medium"),
        "renewal_preference": selected("automatic"),
        "compliance_requirements": { "value": { "type": "multi_static_select", "selected_options": [ { "value": "PCI_DSS" } ] } },
    });
    let next: Value = t.answer(submit("request_questionnaire", answers, "")).await;
    assert_eq!(next["response_action"], "update");
    let details = &next["view"];
    assert_eq!(details["callback_id"], "request_details");
    let shown = text_of(details);
    assert!(shown.contains("*public* CA"), "{shown}");
    // No public CA is configured in this test: the requester is told before choosing.
    assert!(
        shown.contains("No public CA is configured here: a request for the public CA is refused"),
        "{shown}"
    );
    assert!(
        shown.contains("at most 200 days"),
        "the cap is explained: {shown}"
    );
    let metadata = details["private_metadata"]
        .as_str()
        .expect("answers")
        .to_owned();

    // Going against the recommendation without a reason, and a bad CN, come back per field.
    let bad = json!({
        "requested_ca_type": { "value": { "type": "radio_buttons", "selected_option": { "value": "internal" } } },
        "common_name": typed("not a host"),
        "certificate_type": selected("web_server"),
        "validity_days": selected("90"),
        "business_justification": typed("Customer portal"),
    });
    let errors: Value = t.answer(submit("request_details", bad, &metadata)).await;
    assert_eq!(errors["response_action"], "errors");
    assert!(
        errors["errors"]["common_name"]
            .as_str()
            .is_some_and(|e| e.contains("host name")),
        "{errors}"
    );

    let good = json!({
        "requested_ca_type": { "value": { "type": "radio_buttons", "selected_option": { "value": "internal" } } },
        "override_reason": typed("only our VPN clients connect"),
        "common_name": typed("portal.example.com"),
        "subject_alternative_names": typed("www.portal.example.com"),
        "certificate_type": selected("web_server"),
        "key_algorithm": selected("ECC_P256"),
        "validity_days": selected("90"),
        "business_justification": typed("Customer portal"),
    });
    let done: Value = t.answer(submit("request_details", good, &metadata)).await;
    assert_eq!(done["response_action"], "clear", "{done}");
    // The requester is told the number in a DM.
    for _ in 0..200 {
        if !t.calls_to("chat.postMessage").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let told = t.calls_to("chat.postMessage");
    assert!(text_of(&told[0]).contains("REQ-"), "{told:?}");
    let created: Value = sqlx::query_scalar(
        "SELECT payload::jsonb -> 'RequestCreated' FROM events WHERE event_type = 'RequestCreated'",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("created");
    assert_eq!(created["override_requested"], true);
    assert_eq!(created["recommendation"]["ca_type"], "public");
    assert_eq!(created["answers"]["compliance_requirements"][0], "PCI_DSS");
}

#[tokio::test]
async fn a_retried_delivery_never_runs_a_command_twice() {
    let t = slack_app().await;
    let body = t.command_body("UJOHN", "request cn=retry.example.com why=x days=90");
    let now = chrono::Utc::now().timestamp();
    let retry = t
        .http
        .post(format!("{}/slack/commands", t.app))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", sign(now, &body))
        .header("x-slack-retry-num", "1")
        .header("x-slack-retry-reason", "http_timeout")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(retry.status(), 200);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&t.db.pool)
        .await
        .expect("count");
    assert_eq!(events, 0);
}

#[tokio::test]
async fn the_questionnaire_works_in_one_line_too() {
    let t = slack_app().await;
    let reply = t
        .cert(
            "UJOHN",
            "recommend public=yes browser=yes lifespan=1_to_2_years compliance=PCI_DSS",
        )
        .await;
    let text = text_of(&reply);
    assert!(text.contains("*public* CA"), "{text}");
    assert!(text.contains("at most 200 days"), "{text}");
    assert!(text.contains("PCI DSS"), "{text}");
    let reply = t.cert("UJOHN", "recommend service=vpn").await;
    let text = text_of(&reply);
    assert!(text.contains("public=…: please choose one"), "{text}");
    assert!(text.contains("browser=…: please choose one"), "{text}");
}

#[tokio::test]
async fn an_overdue_approval_reminds_its_approvers_in_slack_then_escalates_to_the_admins() {
    use cert_assistant::adapters::clock::SettableClock;
    use cert_assistant::saga::escalation::EscalationWorker;

    let t = slack_app().await;
    let commands = service(&t.db);
    let root = ctx("root@example.com");
    crate::fixtures::approver(&commands, "jane@example.com").await;
    let project = || crate::helpers::project(&t.db.pool);
    let notifier = t.notifier();
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]);
    let posts_to = |channel: &str, containing: &str| {
        t.calls_to("chat.postMessage")
            .into_iter()
            .filter(|m| m["channel"] == channel && text_of(m).contains(containing))
            .collect::<Vec<_>>()
    };
    project().await;
    let reply = t
        .cert("UJOHN", "request cn=slow.example.com why=testing days=90")
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    deliver().await;
    // An admin who joins later was not asked; the escalation reaches them.
    commands
        .grant_role(
            &root,
            &Email::parse("ops@example.com").expect("email"),
            Role::Admin,
        )
        .await
        .expect("grant");
    project().await;

    let clock = Arc::new(SettableClock::at(
        chrono::Utc::now() + chrono::Duration::hours(49),
    ));
    let job = EscalationWorker::new(commands.clone(), clock.clone());
    job.step().await.expect("pass").expect("lease");
    project().await;
    deliver().await;
    for approver in ["D-UJANE", "D-UROOT"] {
        let reminders = posts_to(approver, "Reminder:");
        assert_eq!(reminders.len(), 1, "{approver}: {reminders:?}");
        assert!(
            text_of(&reminders[0]).contains("has waited 49 hours"),
            "{}",
            reminders[0]
        );
        assert!(
            text_of(&reminders[0]).contains(&format!("\"value\":\"{number}\"")),
            "the reminder carries the decision buttons: {}",
            reminders[0]
        );
    }
    assert!(posts_to("D-UOPS", "").is_empty(), "no escalation yet");

    clock.advance(chrono::Duration::hours(49));
    job.step().await.expect("pass").expect("lease");
    deliver().await;
    let escalation = posts_to("D-UOPS", "Escalation:");
    assert_eq!(escalation.len(), 1, "{escalation:?}");
    assert!(
        text_of(&escalation[0]).contains("jane@example.com"),
        "names who did not decide: {}",
        escalation[0]
    );
    assert_eq!(posts_to("D-UJANE", "Reminder:").len(), 2);

    // The admin decides from the escalation; every copy (asks and nudges) is updated.
    t.interact(t.button("UOPS", "approve", &number, "ops"))
        .await;
    t.wait_for_response("ops", 1).await;
    deliver().await;
    let updated = t.calls_to("chat.update");
    assert_eq!(
        updated.len(),
        7,
        "2 asks, 2 + 2 reminders, 1 escalation: {updated:?}"
    );
    assert!(
        updated
            .iter()
            .all(|u| text_of(u).contains("Approved by ops@example.com"))
    );

    // A request nobody decides on is cancelled after approval.stale_request.days (14):
    // its approval messages say so and lose their buttons, and the requester is told.
    let reply = t
        .cert(
            "UJOHN",
            "request cn=forgotten.example.com why=testing days=90",
        )
        .await;
    let forgotten = crate::helpers::request_number_in(&text_of(&reply));
    deliver().await;
    project().await;
    let later = EscalationWorker::new(
        commands.clone(),
        Arc::new(SettableClock::at(
            chrono::Utc::now() + chrono::Duration::days(15),
        )),
    );
    let pass = later.step().await.expect("pass").expect("lease");
    assert_eq!(pass.expired, std::slice::from_ref(&forgotten));
    deliver().await;
    let told = posts_to("D-UJOHN", "without a decision");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(text_of(&told[0]).contains(&forgotten));
    let withdrawn: Vec<Value> = t
        .calls_to("chat.update")
        .into_iter()
        .filter(|u| text_of(u).contains(&forgotten))
        .collect();
    assert_eq!(
        withdrawn.len(),
        3,
        "jane, root and ops were asked: {withdrawn:?}"
    );
    assert!(
        withdrawn
            .iter()
            .all(|u| text_of(u).contains("no decision within 15 days")
                && !text_of(u).contains("\"actions\""))
    );
}

#[tokio::test]
async fn a_certificate_lives_through_slack_request_approve_issue_remind_download_renew_revoke() {
    use cert_assistant::adapters::clock::SettableClock;
    use cert_assistant::saga::expiry::ExpiryWorker;

    let t = slack_app().await;
    let commands = service(&t.db);
    crate::fixtures::approver(&commands, "jane@example.com").await;
    let project = || crate::helpers::project(&t.db.pool);
    let notifier = t.notifier();
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]);
    let dms_to_john = || {
        t.calls_to("chat.postMessage")
            .into_iter()
            .filter(|m| m["channel"] == "D-UJOHN")
            .collect::<Vec<_>>()
    };
    project().await;
    let number_in = crate::helpers::request_number_in;

    // Request and approve in Slack; the issuance saga (embedded CA) issues it.
    let reply = t
        .cert(
            "UJOHN",
            "request cn=life.example.com days=90 why=\"Whole life\"",
        )
        .await;
    let number = number_in(&text_of(&reply));
    let approved = text_of(&t.cert("UJANE", &format!("approve {number}")).await);
    assert!(approved.contains("approved"), "{approved}");
    let s = crate::saga::saga(&t.db).await;
    crate::saga::feed(&t.db).await;
    s.worker.step().await.expect("issued");
    let serial: String = sqlx::query_scalar("SELECT serial FROM embedded_ca_certificates")
        .fetch_one(&t.db.pool)
        .await
        .expect("serial");
    deliver().await;
    assert!(
        dms_to_john()
            .iter()
            .any(|m| text_of(m).contains("is issued (serial")),
        "john hears of the certificate: {:?}",
        dms_to_john()
    );
    let status = t.cert("UJOHN", &format!("status {number}")).await;
    assert!(
        status.to_string().contains(&serial),
        "status shows the serial: {status}"
    );

    // A month later the expiry job reminds John in Slack, with a Renew button.
    project().await;
    let clock = Arc::new(SettableClock::at(
        chrono::Utc::now() + chrono::Duration::days(31),
    ));
    let pass = ExpiryWorker::new(commands.clone(), clock)
        .step()
        .await
        .expect("expiry pass")
        .expect("lease");
    assert_eq!(pass.reminded, 1);
    deliver().await;
    let reminder = dms_to_john()
        .into_iter()
        .find(|m| text_of(m).contains("expires on"))
        .unwrap_or_else(|| panic!("no reminder among {:?}", dms_to_john()));
    assert!(text_of(&reminder).contains("in 58 days"), "{reminder}");
    let renew = &reminder["blocks"][1]["elements"][0];
    assert_eq!(renew["action_id"], "renew");
    assert_eq!(renew["value"], serial.as_str());

    let link = text_of(&t.cert("UJOHN", &format!("download {serial}")).await);
    let token = crate::helpers::download_token_in(&link);
    // The service that serves the links, over the saga's artifact store.
    let server_url = crate::downloads::serve_downloads(&t.db, &s).await;
    let pem = t
        .http
        .get(format!("{server_url}/downloads/{token}"))
        .send()
        .await
        .expect("download");
    assert_eq!(pem.status(), 200);
    assert!(
        pem.text()
            .await
            .expect("body")
            .contains("BEGIN CERTIFICATE")
    );
    project().await;
    let downloads: i32 =
        sqlx::query_scalar("SELECT download_count FROM certificates WHERE serial_number = $1")
            .bind(&serial)
            .fetch_one(&t.db.pool)
            .await
            .expect("count");
    assert_eq!(downloads, 1, "the download is counted");
    let theirs = text_of(&t.cert("UJANE", &format!("download {serial} key")).await);
    assert!(theirs.contains("only the owner"), "{theirs}");

    // John clicks Renew; Jane approves the renewal with her button; it is issued.
    t.interact(t.button("UJOHN", "renew", &serial, "renew"))
        .await;
    let renewal = text_of(&t.wait_for_response("renew", 1).await[0]);
    let renewed = number_in(&renewal);
    assert_ne!(renewed, number);
    // Only the owner (or an admin) may renew: Jane's click is refused, and nothing is filed.
    t.interact(t.button("UJANE", "renew", &serial, "renew-jane"))
        .await;
    let refused = text_of(&t.wait_for_response("renew-jane", 1).await[0]);
    assert!(
        refused.contains("only the certificate's owner"),
        "{refused}"
    );
    t.interact(t.button("UJANE", "approve", &renewed, "approve-renewal"))
        .await;
    t.wait_for_response("approve-renewal", 1).await;
    crate::saga::feed(&t.db).await;
    s.worker.step().await.expect("renewal issued");

    // The issuance message of the renewal offers to revoke the old certificate.
    deliver().await;
    let issued = dms_to_john()
        .into_iter()
        .find(|m| text_of(m).contains(&renewed) && text_of(m).contains("is issued"))
        .unwrap_or_else(|| panic!("no issuance DM among {:?}", dms_to_john()));
    let supersede = issued["blocks"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "actions"))
        .map(|b| b["elements"][0].clone())
        .expect("a revoke button");
    assert_eq!(supersede["action_id"], "revoke_superseded");
    assert_eq!(supersede["value"], serial.as_str());
    assert!(supersede.get("confirm").is_some(), "revoking asks first");

    t.interact(t.button("UJOHN", "revoke_superseded", &serial, "revoke"))
        .await;
    let revoked = text_of(&t.wait_for_response("revoke", 1).await[0]);
    assert!(revoked.contains("revoked (superseded)"), "{revoked}");
    t.interact(t.button("UJOHN", "revoke_superseded", &serial, "revoke-again"))
        .await;
    let again = text_of(&t.wait_for_response("revoke-again", 1).await[0]);
    assert!(again.contains("already revoked"), "{again}");
    project().await;
    let old: String =
        sqlx::query_scalar("SELECT status FROM certificates WHERE serial_number = $1")
            .bind(&serial)
            .fetch_one(&t.db.pool)
            .await
            .expect("old certificate");
    assert_eq!(old, "revoked");
}

#[tokio::test]
async fn a_revocation_whose_reason_needs_approval_waits_for_an_approvers_button() {
    let t = slack_app().await;
    let commands = service(&t.db);
    let root = ctx("root@example.com");
    crate::fixtures::approver(&commands, "jane@example.com").await;
    commands
        .set_config(
            &root,
            "revocation.approval_required_reasons",
            r#"["cessation_of_operation"]"#,
            None,
        )
        .await
        .expect("config");
    let project = || crate::helpers::project(&t.db.pool);
    let notifier = t.notifier();
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]);
    project().await;
    let s = crate::saga::saga(&t.db).await;
    let serial = crate::saga::issued(&t.db, &s, "retire.example.com").await;
    project().await;
    deliver().await;
    let status = || async {
        project().await;
        sqlx::query_scalar::<_, String>("SELECT status FROM certificates WHERE serial_number = $1")
            .bind(&serial)
            .fetch_one(&t.db.pool)
            .await
            .expect("certificate")
    };

    // John asks; the reason needs an approver, so nothing is revoked yet.
    let asked = text_of(
        &t.cert(
            "UJOHN",
            &format!("revoke {serial} cessation_of_operation service retired"),
        )
        .await,
    );
    assert!(asked.contains("needs an approver's consent"), "{asked}");
    assert_eq!(status().await, "active");
    let twice = text_of(
        &t.cert("UJOHN", &format!("revoke {serial} cessation_of_operation"))
            .await,
    );
    assert!(twice.contains("already waits for an approver"), "{twice}");
    let own = text_of(&t.cert("UJOHN", &format!("approve {serial}")).await);
    assert!(own.contains("your own revocation"), "{own}");

    // The approvers (not John) are asked by e-mail too, once, with what they decide on.
    let asks_mailed = || async {
        let mails = crate::helpers::mail_revocation_asks(&t.db, &t.workers.commands).await;
        let asks = mails
            .into_iter()
            .filter(|(_, mail)| mail.contains("asks to revoke"));
        asks.collect::<Vec<_>>()
    };
    let mails = asks_mailed().await;
    let mut mailed: Vec<&str> = mails.iter().map(|(to, _)| to.as_str()).collect();
    mailed.sort_unstable();
    assert_eq!(
        mailed,
        ["jane@example.com", "root@example.com"],
        "{mails:?}"
    );
    for (_, mail) in &mails {
        assert!(
            mail.contains("john@example.com asks to revoke certificate")
                && mail.contains(&serial)
                && mail.contains("retire.example.com")
                && mail.contains("service retired"),
            "{mail}"
        );
    }
    assert!(asks_mailed().await.is_empty(), "nobody is asked twice");
    project().await;
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE notification_type = 'approval_requested' \
            AND status = 'sent' AND channel = 'email'",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("notifications");
    assert_eq!(recorded, 2, "each mail is a notification like every other");

    // The approvers (not John) get Approve / Reject buttons carrying the serial.
    let before = t.calls_to("chat.postMessage").len();
    deliver().await;
    let asks: Vec<Value> = t.calls_to("chat.postMessage")[before..]
        .iter()
        .filter(|m| text_of(m).contains("asks to revoke"))
        .cloned()
        .collect();
    let mut to: Vec<&str> = asks.iter().filter_map(|m| m["channel"].as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, ["D-UJANE", "D-UROOT"], "{asks:?}");
    let buttons = &asks[0]["blocks"][2]["elements"];
    assert_eq!(
        buttons.as_array().map(Vec::len),
        Some(2),
        "no Delegate: {buttons}"
    );
    assert_eq!(buttons[0]["value"], serial.as_str());

    // Jane rejects with a reason in the modal: it stays active, John is told.
    t.interact(t.button("UJANE", "reject", &serial, "reject-revocation"))
        .await;
    let view = t.calls_to("views.open").last().cloned().expect("modal")["view"].clone();
    assert_eq!(view["title"]["text"], "Reject revocation");
    let done = t
        .interact(json!({
            "type": "view_submission",
            "team": { "id": "T1" },
            "user": { "id": "UJANE", "team_id": "T1" },
            "view": {
                "callback_id": "reject",
                "private_metadata": view["private_metadata"],
                "state": { "values": { "reason": { "value": { "type": "plain_text_input", "value": "still in use by billing" } } } },
            },
        }))
        .await;
    assert_eq!(done.status(), 200);
    let rejected = t.wait_for_response("reject-revocation", 1).await;
    assert!(
        text_of(&rejected[0]).contains("Revocation rejected by jane@example.com"),
        "{}",
        rejected[0]
    );
    assert_eq!(status().await, "active");
    deliver().await;
    let updates: Vec<Value> = t
        .calls_to("chat.update")
        .into_iter()
        .filter(|u| text_of(u).contains("Revocation of"))
        .collect();
    assert_eq!(updates.len(), 2, "both copies: {updates:?}");
    assert!(
        updates
            .iter()
            .all(|u| text_of(u).contains("still in use by billing"))
    );
    assert!(
        t.calls_to("chat.postMessage")
            .iter()
            .any(|m| m["channel"] == "D-UJOHN" && text_of(m).contains("rejected your revocation")),
        "John is told"
    );

    // Asked again, Jane approves with the button: revoked, recorded as approved.
    let again = text_of(
        &t.cert(
            "UJOHN",
            &format!("revoke {serial} cessation_of_operation billing moved"),
        )
        .await,
    );
    assert!(again.contains("needs an approver's consent"), "{again}");
    deliver().await;
    t.interact(t.button("UJANE", "approve", &serial, "approve-revocation"))
        .await;
    let approved = t.wait_for_response("approve-revocation", 1).await;
    assert!(
        text_of(&approved[0]).contains("Revocation approved by jane@example.com"),
        "{}",
        approved[0]
    );
    assert_eq!(status().await, "revoked");
    let (required, approver): (bool, Option<String>) = sqlx::query_as(
        "SELECT r.approval_required, u.email FROM certificate_revocations r \
           JOIN certificates c ON c.id = r.certificate_id \
           LEFT JOIN users u ON u.id = r.approver_id WHERE c.serial_number = $1",
    )
    .bind(&serial)
    .fetch_one(&t.db.pool)
    .await
    .expect("revocation row");
    assert_eq!(
        (required, approver.as_deref()),
        (true, Some("jane@example.com"))
    );
    deliver().await;
    assert!(
        t.calls_to("chat.postMessage")
            .iter()
            .any(|m| m["channel"] == "D-UJOHN" && text_of(m).contains("approved your revocation")),
        "John is told"
    );

    // Other reasons are not held: an admin's revocation never waits either.
    let serial2 = crate::saga::issued(&t.db, &s, "urgent.example.com").await;
    let urgent = text_of(
        &t.cert("UJOHN", &format!("revoke {serial2} key_compromise"))
            .await,
    );
    assert!(urgent.contains("is revoked"), "{urgent}");

    // An ask overtaken by an admin's own revocation loses its buttons on every copy.
    let serial3 = crate::saga::issued(&t.db, &s, "moot.example.com").await;
    let asked = text_of(
        &t.cert("UJOHN", &format!("revoke {serial3} cessation_of_operation"))
            .await,
    );
    assert!(asked.contains("needs an approver's consent"), "{asked}");
    deliver().await;
    let revoked = text_of(
        &t.cert("UROOT", &format!("revoke {serial3} key_compromise"))
            .await,
    );
    assert!(revoked.contains("is revoked"), "{revoked}");
    let updated_before = t.calls_to("chat.update").len();
    deliver().await;
    let moot: Vec<Value> = t.calls_to("chat.update")[updated_before..]
        .iter()
        .filter(|u| text_of(u).contains(&serial3))
        .cloned()
        .collect();
    assert_eq!(moot.len(), 2, "both approvers' copies: {moot:?}");
    for copy in &moot {
        assert!(
            text_of(copy).contains("no decision is needed any more"),
            "{copy}"
        );
        assert!(!text_of(copy).contains("\"actions\""), "{copy}");
    }
}

#[tokio::test]
async fn a_decision_never_overtakes_the_message_it_updates() {
    let t = slack_app().await;
    let commands = service(&t.db);
    crate::fixtures::approver(&commands, "jane@example.com").await;
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    // Asked and decided before the notifier ran: both jobs arrive in one batch.
    let submitted = commands
        .submit_request(
            &ctx("john@example.com"),
            crate::fixtures::web_request("fast.example.com"),
        )
        .await
        .expect("submitted");
    commands
        .approve(&ctx("jane@example.com"), &submitted.request_number, None)
        .await
        .expect("approved");
    Projector::for_consumer(t.db.pool.clone(), t.workers.outbox.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");
    let notifier = t.notifier();
    let first = notifier.step().await.expect("deliver");
    assert_eq!(first, 1, "the decision waits for the ask to be done");
    while notifier.step().await.expect("deliver") > 0 {}
    let asked = t.calls_to("chat.postMessage").len();
    let updated = t.calls_to("chat.update");
    assert!(asked >= 2, "jane and root were asked");
    assert_eq!(updated.len(), 2, "every ask is updated: {updated:?}");
}

#[tokio::test]
async fn admins_get_the_operator_task_in_slack_and_confirm_it_with_a_button() {
    let t = slack_app().await;
    let commands = service(&t.db);
    let s = crate::saga::saga(&t.db).await;
    let serial = crate::saga::issued(&t.db, &s, "by-hand.example.com").await;
    let revoked = text_of(
        &t.cert("UJOHN", &format!("revoke {serial} key_compromise"))
            .await,
    );
    assert!(revoked.contains("is revoked"), "{revoked}");
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM certificates WHERE serial_number = $1")
        .bind(&serial)
        .fetch_one(&t.db.pool)
        .await
        .expect("id");
    // The CA could not be told (as with ADCS and no revoke command).
    commands
        .record_ca_revocation(
            id,
            Err(format!("revoke {serial} by hand: certutil -revoke")),
        )
        .await
        .expect("recorded");
    let notifier = t.notifier();
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]);
    deliver().await;
    let tasks: Vec<Value> = t
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|m| text_of(m).contains("could not be told"))
        .collect();
    assert_eq!(tasks.len(), 1, "root is the admin: {tasks:?}");
    assert_eq!(tasks[0]["channel"], "D-UROOT");
    let button = &tasks[0]["blocks"][1]["elements"][0];
    assert_eq!(button["action_id"], "confirm_revocation");
    assert!(button.get("confirm").is_some());

    // John may not confirm; root does, with the button.
    t.interact(t.button("UJOHN", "confirm_revocation", &serial, "john-confirms"))
        .await;
    let refused = text_of(&t.wait_for_response("john-confirms", 1).await[0]);
    assert!(refused.contains("only an admin"), "{refused}");
    t.interact(t.button("UROOT", "confirm_revocation", &serial, "root-confirms"))
        .await;
    let confirmed = text_of(&t.wait_for_response("root-confirms", 1).await[0]);
    assert!(confirmed.contains("is revoked at the CA"), "{confirmed}");
    deliver().await;
    let updated: Vec<Value> = t
        .calls_to("chat.update")
        .into_iter()
        .filter(|u| text_of(u).contains("confirmed by root@example.com"))
        .collect();
    assert_eq!(updated.len(), 1, "the task message is closed: {updated:?}");
}

/// Collects everything the service logs while alive.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything the service logs (at debug) in this test binary, from every test running in it:
/// a subscriber for the whole process, because a thread-local one misses events whose
/// callsites other threads registered first.
fn captured_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_env_filter("cert_assistant=debug,info")
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
        logs
    })
    .clone()
}

#[tokio::test]
async fn no_secret_reaches_the_logs_the_events_or_any_reply_in_a_whole_flow() {
    let logs = captured_logs();

    let t = slack_app().await;
    let commands = service(&t.db);
    crate::fixtures::approver(&commands, "jane@example.com").await;
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let mut replies = Vec::new();
    let reply = t
        .cert(
            "UJOHN",
            "request cn=secret.example.com days=90 why=\"Secrets test\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    replies.push(reply);
    replies.push(t.cert("UJANE", &format!("approve {number}")).await);
    let s = crate::saga::saga(&t.db).await;
    crate::saga::feed(&t.db).await;
    s.worker.step().await.expect("issued");
    let serial: String = sqlx::query_scalar("SELECT serial FROM embedded_ca_certificates")
        .fetch_one(&t.db.pool)
        .await
        .expect("serial");
    let link = t
        .cert("UJOHN", &format!("download {serial} private_key"))
        .await;
    let link_text = text_of(&link);
    replies.push(link.clone());
    let token = crate::helpers::download_token_in(&link_text);
    let passphrase: String = link_text
        .split("shown only here: `")
        .nth(1)
        .expect("a passphrase")
        .chars()
        .take_while(|c| *c != '`')
        .collect();
    let server_url = crate::downloads::serve_downloads(&t.db, &s).await;
    let encrypted = t
        .http
        .post(format!("{server_url}/downloads/{token}"))
        .send()
        .await
        .expect("download")
        .text()
        .await
        .expect("body");
    assert!(encrypted.contains("ENCRYPTED PRIVATE KEY"), "{encrypted}");
    // The key in the clear, to search for it.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("key.pem"), &encrypted).expect("write");
    let plain = std::process::Command::new("openssl")
        .args(["pkey", "-passin"])
        .arg(format!("pass:{passphrase}"))
        .arg("-in")
        .arg(dir.path().join("key.pem"))
        .output()
        .expect("openssl");
    assert!(plain.status.success(), "{plain:?}");
    let plain = String::from_utf8(plain.stdout).expect("pem");
    let key_body: Vec<String> = plain
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    Projector::for_consumer(t.db.pool.clone(), t.workers.outbox.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");
    let notifier = t.notifier();
    while notifier.step().await.expect("deliver") > 0 {}
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");

    let logged = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logged.contains("listening"), "the logs were captured");
    let events: String = sqlx::query_scalar(
        "SELECT string_agg(payload::text || ' ' || metadata::text, '\n') FROM events",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("events");
    let read_model: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(to_jsonb(a)::text, '\n'), '') FROM audit_logs a",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("audit");
    let mut said: Vec<String> = replies.iter().map(text_of).collect();
    said.extend(
        t.calls
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, body)| body.to_string()),
    );
    let said = said.join("\n");
    let secrets = [
        ("the Slack signing secret", SECRET.to_owned()),
        ("the bot token", "xoxb-test".to_owned()),
        ("the key-encryption key", crate::fixtures::KEK.to_owned()),
        (
            "a private key in the clear",
            "PRIVATE KEY-----\nMI".to_owned(),
        ),
        ("the private key's body", key_body[0].clone()),
        (
            "the private key's body",
            key_body[key_body.len() / 2].clone(),
        ),
    ];
    for (what, secret) in &secrets {
        for (place, text) in [
            ("the logs", &logged),
            ("the events", &events),
            ("the audit trail", &read_model),
            ("the replies and messages", &said),
        ] {
            assert!(!text.contains(secret.as_str()), "{what} is in {place}");
        }
    }
    // The passphrase is shown to the owner once, in the private reply, and nowhere else.
    for (place, text) in [
        ("the logs", &logged),
        ("the events", &events),
        ("the audit trail", &read_model),
    ] {
        assert!(!text.contains(&passphrase), "the passphrase is in {place}");
    }
}

#[tokio::test]
async fn the_forged_input_matrix_for_every_slack_route_appends_nothing() {
    let t = slack_app().await;
    let now = chrono::Utc::now().timestamp();
    let command = t.command_body("UJOHN", "request cn=app.example.com why=x");
    let click = form(&[(
        "payload",
        &t.button("UJANE", "approve", "REQ-20261127-00001", "x")
            .to_string(),
    )]);
    /// (what, route, body, timestamp, signature override, content type, status)
    type Case<'a> = (&'a str, &'a str, String, i64, Option<String>, &'a str, u16);
    let cases: Vec<Case<'_>> = vec![
        (
            "missing signature",
            "/slack/commands",
            command.clone(),
            now,
            Some(String::new()),
            "application/x-www-form-urlencoded",
            401,
        ),
        (
            "garbled signature",
            "/slack/commands",
            command.clone(),
            now,
            Some("v0=zz".to_owned()),
            "application/x-www-form-urlencoded",
            401,
        ),
        (
            "wrong secret",
            "/slack/commands",
            command.clone(),
            now,
            Some(sign(now, "other")),
            "application/x-www-form-urlencoded",
            401,
        ),
        (
            "stale timestamp",
            "/slack/commands",
            command.clone(),
            now - 600,
            None,
            "application/x-www-form-urlencoded",
            400,
        ),
        (
            "future timestamp",
            "/slack/commands",
            command.clone(),
            now + 600,
            None,
            "application/x-www-form-urlencoded",
            400,
        ),
        (
            "forged click",
            "/slack/interactivity",
            click.clone(),
            now,
            Some(sign(now, "other")),
            "application/x-www-form-urlencoded",
            401,
        ),
        (
            "stale click",
            "/slack/interactivity",
            click.clone(),
            now - 600,
            None,
            "application/x-www-form-urlencoded",
            400,
        ),
        (
            "oversized body",
            "/slack/commands",
            "a".repeat(2 * 1024 * 1024),
            now,
            None,
            "application/x-www-form-urlencoded",
            413,
        ),
    ];
    for (what, route, body, timestamp, signature, content_type, status) in cases {
        let signature = signature.unwrap_or_else(|| sign(timestamp, &body));
        let mut request = t
            .http
            .post(format!("{}{route}", t.app))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", timestamp.to_string())
            .body(body.clone());
        if !signature.is_empty() {
            request = request.header("x-slack-signature", signature);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status().as_u16(), status, "{what}");
    }
    // Tampered after signing: the signature covered another body.
    let signature = sign(now, &command);
    let tampered = command.replace("app.example.com", "evil.example.com");
    let response = t
        .post_signed("/slack/commands", tampered, now, &signature)
        .await;
    assert_eq!(response.status(), 401, "tampered body");
    // Well signed but not what the route reads: refused without acting.
    let json_body = r#"{"text":"request cn=x.example.com"}"#.to_owned();
    let response = t
        .http
        .post(format!("{}/slack/commands", t.app))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-signature", sign(now, &json_body))
        .body(json_body)
        .send()
        .await
        .expect("send");
    assert!(
        response.status().is_client_error(),
        "wrong content type: {}",
        response.status()
    );
    // A redelivery (Slack retries when it thinks it got no answer) is acknowledged, not acted on.
    let retried = t
        .http
        .post(format!("{}/slack/events", t.app))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", now.to_string())
        .header("x-slack-retry-num", "1")
        .header(
            "x-slack-signature",
            sign(now, r#"{"type":"event_callback"}"#),
        )
        .body(r#"{"type":"event_callback"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(retried.status(), 200);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&t.db.pool)
        .await
        .expect("count");
    assert_eq!(events, 0, "nothing was appended");
    assert!(
        t.calls_to("users.info").is_empty(),
        "nothing was even looked up"
    );
}

#[tokio::test]
async fn a_padded_serial_is_refused_or_recorded_parsed_and_never_stops_the_read_model() {
    let t = slack_app().await;
    let s = crate::saga::saga(&t.db).await;
    let serial = crate::saga::issued(&t.db, &s, "padded.example.com").await;
    // The serial with a separator after every digit: valid, and longer than the column.
    let spread: String = serial.chars().flat_map(|c| [c, ':']).collect();
    let padded = format!("{}{}", &serial[..2], ":".repeat(300)) + &serial[2..];

    // Far beyond any serial: refused where it is parsed, with the limit.
    let reply = text_of(
        &t.cert("UJOHN", &format!("confirm-revocation {padded}"))
            .await,
    );
    assert!(reply.contains("at most 100 characters"), "{reply}");
    // Within the limit but not theirs: refused, and recorded with the parsed serial.
    let reply = text_of(
        &t.cert("UJOHN", &format!("confirm-revocation {spread}"))
            .await,
    );
    assert!(reply.contains("admin"), "{reply}");
    let reply = text_of(&t.cert("UJANE", &format!("download {spread} key")).await);
    assert!(reply.contains("only the owner"), "{reply}");
    let reply = text_of(&t.cert("UJANE", &format!("renew {spread}")).await);
    assert!(reply.contains("owner"), "{reply}");
    // And from the command line.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
    command
        .args([
            "certificate",
            "confirm-revocation",
            &spread,
            "--as",
            "ops@example.com",
        ])
        .env("DATABASE_URL", crate::helpers::database_url(&t.db.name))
        .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", crate::fixtures::KEK);
    let output = crate::helpers::output(command).await;
    assert!(!output.status.success());

    crate::helpers::project(&t.db.pool).await;
    let identifiers: Vec<String> = sqlx::query_scalar(
        "SELECT resource_identifier FROM audit_logs WHERE result = 'failure' \
          AND resource_type = 'certificate'",
    )
    .fetch_all(&t.db.pool)
    .await
    .expect("refusals");
    assert_eq!(identifiers.len(), 4, "{identifiers:?}");
    assert!(
        identifiers.iter().all(|id| *id == serial),
        "{identifiers:?}"
    );
    let read_model = Projector::status(&t.db.pool)
        .await
        .expect("status")
        .into_iter()
        .find(|status| status.name == "read_model")
        .expect("the read model's checkpoint");
    assert_eq!(read_model.lag_events, 0, "the read model is caught up");
}

#[tokio::test]
async fn the_names_policy_is_shown_and_refuses_names_outside_it_next_to_each_field() {
    let t = slack_app().await;
    let commands = service(&t.db);
    // A policy that cannot be applied is refused with the reason...
    let refused = commands
        .set_config(
            &ctx("root@example.com"),
            "certificate.names_policy",
            r#"{"default": {"ip_addresses": true}}"#,
            Some("json"),
        )
        .await
        .expect_err("IP addresses are not supported");
    assert!(refused.to_string().contains("not supported"), "{refused}");
    // ...and one that can is set by an admin, and shown to everyone.
    commands
        .set_config(
            &ctx("root@example.com"),
            "certificate.names_policy",
            r#"{"default": {"domains": ["example.com"], "max_validity_days": 365}}"#,
            Some("json"),
        )
        .await
        .expect("set");
    crate::helpers::project(&t.db.pool).await;
    let help = text_of(&t.cert("UJOHN", "help").await);
    assert!(
        help.contains("web_server: names in example.com, wildcards for public certificates only, no IP addresses, at most 365 days"),
        "{help}"
    );
    let shown = text_of(&t.cert("UROOT", "config get certificate.names_policy").await);
    assert!(shown.contains("vpn: names in example.com"), "{shown}");

    // The form: each name outside the policy is refused next to its field, with the rule.
    let answers = json!({
        "service_type": selected("web_server"),
        "publicly_accessible": selected("no"),
        "browser_trust_required": selected("no"),
        "expected_lifespan": selected("90_to_365"),
        "environment_type": selected("production"),
        "certificate_count": selected("single"),
        "domain_type": selected("single"),
        "criticality_level": selected("medium"),
        "renewal_preference": selected("automatic"),
    });
    let next: Value = t.answer(submit("request_questionnaire", answers, "")).await;
    let metadata = next["view"]["private_metadata"]
        .as_str()
        .expect("answers")
        .to_owned();
    let outside = json!({
        "common_name": typed("portal.example.org"),
        "subject_alternative_names": typed("*.example.com"),
        "certificate_type": selected("web_server"),
        "validity_days": selected("730"),
        "business_justification": typed("Customer portal"),
    });
    let errors: Value = t
        .answer(submit("request_details", outside, &metadata))
        .await;
    assert_eq!(errors["response_action"], "errors", "{errors}");
    let at = |field: &str| {
        errors["errors"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        at("common_name").contains("portal.example.org is outside the domains the names policy allows for web_server (example.com)"),
        "{errors}"
    );
    assert!(
        at("subject_alternative_names")
            .contains("*.example.com: wildcards are for public certificates"),
        "{errors}"
    );
    assert!(at("validity_days").contains("at most 365"), "{errors}");

    // The one-line form says the same; nothing is recorded.
    let line = text_of(
        &t.cert("UJOHN", "request cn=app.example.net why=x days=90")
            .await,
    );
    assert!(line.contains("outside the domains"), "{line}");
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'RequestCreated'")
            .fetch_one(&t.db.pool)
            .await
            .expect("count");
    assert_eq!(created, 0);
    // Within the policy, it goes through.
    let fine = text_of(
        &t.cert("UJOHN", "request cn=app.example.com why=x days=365")
            .await,
    );
    assert!(fine.contains("is submitted"), "{fine}");
}

#[tokio::test]
async fn a_request_for_the_public_ca_is_refused_or_sent_internal_by_policy_and_everyone_is_told() {
    let t = slack_app().await;
    let commands = service(&t.db);
    crate::fixtures::approver(&commands, "jane@example.com").await;
    crate::helpers::project(&t.db.pool).await;
    let ask = "request cn=shop.example.com why=\"web shop\" days=90 ca=public";
    // No public CA is configured: refused when submitted, saying what to do.
    let refused = text_of(&t.cert("UJOHN", ask).await);
    assert!(
        refused.contains("AWS Certificate Manager) is not configured")
            && refused.contains("certificate.public_requests internal"),
        "{refused}"
    );
    let created = || async {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'RequestCreated'")
                .fetch_one(&t.db.pool)
                .await
                .expect("count");
        count
    };
    assert_eq!(created().await, 0);

    // An admin lets public requests go to the internal CA: requester and approver are told.
    commands
        .set_config(
            &ctx("root@example.com"),
            "certificate.public_requests",
            "internal",
            Some("string"),
        )
        .await
        .expect("set");
    crate::helpers::project(&t.db.pool).await;
    let accepted = text_of(&t.cert("UJOHN", ask).await);
    assert!(
        accepted.contains("is submitted") && accepted.contains("It goes to the internal CA"),
        "{accepted}"
    );
    let ca: String = sqlx::query_scalar(
        "SELECT payload::jsonb -> 'RequestCreated' ->> 'requested_ca_type' FROM events \
          WHERE event_type = 'RequestCreated'",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("created");
    assert_eq!(ca, "internal");
    let outbox = Projector::for_consumer(t.db.pool.clone(), t.workers.outbox.clone());
    outbox
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");
    t.notifier().step().await.expect("deliver");
    let dm = t
        .calls_to("chat.postMessage")
        .into_iter()
        .find(|m| m["channel"] == "D-UJANE")
        .expect("jane is asked");
    let shown = text_of(&dm);
    assert!(
        shown.contains("*CA*\\ninternal: It goes to the internal CA: no public CA is configured"),
        "{shown}"
    );
}

/// More commands than the service takes on at once: those without a place are answered at
/// once that it is busy, and nothing is done for them; the others are done whole.
#[tokio::test]
async fn commands_past_what_the_service_takes_on_are_answered_busy_and_change_nothing() {
    let t = slack_app_with(TestDb::new().await, |config| {
        config.chat.max_in_flight = 1;
        config.chat.busy_after_ms = 0;
    })
    .await;
    let asks = (0..40).map(|i| {
        let t = &t;
        async move {
            let text = format!("request cn=busy{i}.example.com why=load days=90");
            text_of(&t.cert("UJOHN", &text).await)
        }
    });
    let replies = futures::future::join_all(asks).await;
    let busy = replies
        .iter()
        .filter(|r| r.contains("is busy right now and did nothing"))
        .count();
    let submitted = replies.iter().filter(|r| r.contains("REQ-")).count();
    assert!(busy > 0, "some commands found no place: {replies:?}");
    assert!(submitted > 0, "some were done: {replies:?}");
    assert_eq!(busy + submitted, replies.len(), "{replies:?}");
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'RequestCreated'")
            .fetch_one(&t.db.pool)
            .await
            .expect("count");
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ApprovalOpened'")
            .fetch_one(&t.db.pool)
            .await
            .expect("count");
    assert_eq!(created, i64::try_from(submitted).expect("small"));
    assert_eq!(
        opened, created,
        "every request taken on was opened for approval"
    );

    // The place is given back: the next command is taken on.
    let reply = text_of(&t.cert("UJOHN", "help").await);
    assert!(!reply.contains("busy"), "{reply}");

    // Clicks pass the same gate: Approve clicked twenty times at once, the clicks that find
    // no place are acked and told privately that nothing was done; one decides.
    let granted = text_of(&t.cert("UROOT", "grant jane@example.com approver").await);
    assert!(granted.contains("approver"), "{granted}");
    let number = replies
        .iter()
        .find(|r| r.contains("REQ-"))
        .map(|r| crate::helpers::request_number_in(r))
        .expect("a submitted request");
    let clicks = (0..20).map(|i| {
        let (t, number) = (&t, &number);
        async move {
            let click = t.button("UJANE", "approve", number, &format!("busy-{i}"));
            assert_eq!(t.interact(click).await.status(), 200);
            t.wait_for_response(&format!("busy-{i}"), 1).await.remove(0)
        }
    });
    let answers = futures::future::join_all(clicks).await;
    let told_busy = answers
        .iter()
        .filter(|a| text_of(a).contains("is busy right now and did nothing"))
        .count();
    assert!(told_busy > 0, "some clicks found no place: {answers:?}");
    let granted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ApprovalGranted'")
            .fetch_one(&t.db.pool)
            .await
            .expect("count");
    assert_eq!(granted, 1, "one click decided: {answers:?}");

    // And modal submissions: one that finds no place keeps the modal open, with the reason
    // typed in it, and says so next to it.
    let origin = json!({ "number": number, "response_url": null }).to_string();
    let submissions = (0..20).map(|_| {
        let (t, origin) = (&t, &origin);
        async move {
            t.answer(json!({
                "type": "view_submission",
                "team": { "id": "T1" },
                "user": { "id": "UJANE", "team_id": "T1" },
                "view": {
                    "callback_id": "reject",
                    "private_metadata": origin,
                    "state": { "values": { "reason": { "value": { "type": "plain_text_input", "value": "late" } } } },
                },
            }))
            .await
        }
    });
    let answers = futures::future::join_all(submissions).await;
    let kept_open = answers
        .iter()
        .filter(|a| {
            a["response_action"] == "errors"
                && text_of(&a["errors"]["reason"]).contains("is busy right now")
        })
        .count();
    assert!(
        kept_open > 0,
        "some submissions found no place: {answers:?}"
    );
}

/// A chat account looked up once is answered from memory, for as long as its row would be
/// answered: the memory expires when the row stops being fresh, never later.
#[tokio::test]
async fn a_remembered_chat_account_is_trusted_no_longer_than_its_row() {
    use cert_assistant::chat::identities::{FRESH_FOR_HOURS, Remembered};
    let db = TestDb::new().await;
    // A row with 1.5 s of freshness left.
    sqlx::query(
        "INSERT INTO chat_identities (platform, workspace_id, user_id, email, display_name, \
             refreshed_at) \
         VALUES ('slack', 'T1', 'UOLD', 'old@example.com', 'Old', \
                 now() - make_interval(hours => $1) + interval '1.5 seconds')",
    )
    .bind(FRESH_FOR_HOURS)
    .execute(&db.pool)
    .await
    .expect("row");
    let remembered = Remembered::default();
    let first = remembered
        .fresh(&db.pool, "slack", "T1", "UOLD")
        .await
        .expect("read");
    assert_eq!(
        first,
        Some(("old@example.com".to_owned(), Some("Old".to_owned())))
    );
    // Answered from memory: the table is not asked again.
    sqlx::query("DELETE FROM chat_identities")
        .execute(&db.pool)
        .await
        .expect("deleted");
    let again = remembered
        .fresh(&db.pool, "slack", "T1", "UOLD")
        .await
        .expect("read");
    assert_eq!(again, first);
    // Once the row would have gone stale, the memory has too.
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    let later = remembered
        .fresh(&db.pool, "slack", "T1", "UOLD")
        .await
        .expect("read");
    assert_eq!(later, None);

    // Remembering writes the row and the memory; a name not given keeps the stored one.
    remembered
        .remember(
            &db.pool,
            "slack",
            "T1",
            "UNEW",
            "new@example.com",
            Some("New"),
        )
        .await
        .expect("remembered");
    remembered
        .remember(&db.pool, "slack", "T1", "UNEW", "new@example.com", None)
        .await
        .expect("remembered");
    let stored: (String, Option<String>) =
        sqlx::query_as("SELECT email, display_name FROM chat_identities WHERE user_id = 'UNEW'")
            .fetch_one(&db.pool)
            .await
            .expect("row");
    let from_memory = remembered
        .fresh(&db.pool, "slack", "T1", "UNEW")
        .await
        .expect("read");
    assert_eq!(from_memory, Some(stored));
}

#[tokio::test]
async fn the_home_tab_shows_requests_certificates_and_the_queue_and_follows_their_events() {
    let t = slack_app().await;
    crate::fixtures::approver(&service(&t.db), "jane@example.com").await;
    let project = || crate::helpers::project(&t.db.pool);
    project().await;
    let reply = t
        .cert("UJOHN", "request cn=home.example.com why=testing days=90")
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    project().await;

    // Jane, an approver, opens her Home tab: the queue, with the decision buttons.
    let jane = t.open_home("UJANE").await;
    assert_eq!(jane["type"], "home");
    let page = jane.to_string();
    assert!(
        page.contains(&number) && page.contains("home.example.com"),
        "{page}"
    );
    assert!(
        jane["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .any(|b| b["type"] == "actions" && b["elements"][0]["value"] == number.as_str()),
        "{jane}"
    );
    // John, a requester, sees his open request and no buttons.
    let john = t.open_home("UJOHN").await;
    let page = john.to_string();
    assert!(
        page.contains(&number) && page.contains("pending_approval"),
        "{page}"
    );
    assert!(!page.contains("\"actions\""), "{page}");
    assert!(page.contains("Your certificates"), "{page}");

    // Jane approves on her page: it comes back with the outcome on top and an empty queue.
    let before = t.homes_of("UJANE").len();
    let click = json!({
        "type": "block_actions",
        "team": { "id": "T1" },
        "user": { "id": "UJANE", "team_id": "T1" },
        "trigger_id": "trigger-home",
        "container": { "type": "view", "view_id": "V1" },
        "view": { "id": "V1", "type": "home" },
        "actions": [ { "action_id": "approve", "value": number, "type": "button" } ],
    });
    assert_eq!(t.interact(click).await.status(), 200);
    // The page waits for the read model to hold the decision (here the test projects).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    project().await;
    let after = t.next_home("UJANE", before).await.to_string();
    assert!(
        after.contains(&format!("{number}: Approved by jane@example.com")),
        "{after}"
    );
    assert!(
        after.contains("Nothing is waiting for a decision"),
        "{after}"
    );

    // John's page follows the decision when the notifier delivers it.
    let before = t.homes_of("UJOHN").len();
    project().await;
    crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [t.notifier()]).await;
    let followed = t.next_home("UJOHN", before).await.to_string();
    assert!(
        followed.contains(&number) && followed.contains("approved"),
        "{followed}"
    );
    assert!(!followed.contains("pending_approval"), "{followed}");

    // Once issued, the certificate is on his page with its expiry.
    let s = crate::saga::saga(&t.db).await;
    crate::saga::feed(&t.db).await;
    s.worker.step().await.expect("issued");
    project().await;
    let before = t.homes_of("UJOHN").len();
    crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [t.notifier()]).await;
    let issued = t.next_home("UJOHN", before).await.to_string();
    assert!(
        issued.contains("(1 active)") && issued.contains("`home.example.com` (serial"),
        "{issued}"
    );
    assert!(
        issued.contains("in 89 days") || issued.contains("in 90 days"),
        "{issued}"
    );
}
