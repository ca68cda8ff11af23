//! Discord, driven the way Discord drives it: Ed25519-signed interactions over real HTTP to
//! the service, and a local server that speaks the REST calls the service makes.

use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::extract::{Path, State};
use axum::routing::{patch, post, put};
use axum::{Json, Router};
use cert_assistant::app::Workers;
use cert_assistant::feed::Projector;
use serde_json::{Value, json};

use crate::fixtures::{approver, service};
use crate::helpers::{Background, TestDb, eventually, test_config, test_files};

/// What the fake Discord saw: (method and path, body).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

async fn open_dm(State(calls): State<Calls>, Json(body): Json<Value>) -> Json<Value> {
    let user = body["recipient_id"].as_str().unwrap_or_default().to_owned();
    calls
        .lock()
        .expect("lock")
        .push(("POST /users/@me/channels".to_owned(), body));
    Json(json!({ "id": format!("DM-{user}"), "type": 1 }))
}

async fn create_message(
    State(calls): State<Calls>,
    Path(channel): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut calls = calls.lock().expect("lock");
    calls.push((format!("POST /channels/{channel}/messages"), body));
    Json(json!({ "id": format!("M{}", calls.len()), "channel_id": channel }))
}

async fn edit_message(
    State(calls): State<Calls>,
    Path((channel, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    calls
        .lock()
        .expect("lock")
        .push((format!("PATCH /channels/{channel}/messages/{id}"), body));
    Json(json!({ "id": id }))
}

async fn register(State(calls): State<Calls>, Json(body): Json<Value>) -> Json<Value> {
    calls
        .lock()
        .expect("lock")
        .push(("PUT commands".to_owned(), body.clone()));
    Json(body)
}

struct DiscordTest {
    db: TestDb,
    app: String,
    key: Ed25519KeyPair,
    calls: Calls,
    files: tempfile::TempDir,
    fake: String,
    workers: Workers,
    http: reqwest::Client,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn discord_app() -> DiscordTest {
    discord_app_started(Background::Stepped).await
}

/// Discord on a service whose `background` runs as given.
async fn discord_app_started(background: Background) -> DiscordTest {
    discord_app_with(background, |_| {}).await
}

/// Discord with `also` configuring more.
async fn discord_app_with(
    background: Background,
    also: impl FnOnce(&mut cert_assistant::config::Config),
) -> DiscordTest {
    let db = TestDb::new().await;
    let calls: Calls = Arc::default();
    let router = Router::new()
        .route("/api/users/@me/channels", post(open_dm))
        .route("/api/channels/{channel}/messages", post(create_message))
        .route("/api/channels/{channel}/messages/{id}", patch(edit_message))
        .route("/api/applications/{app}/commands", put(register))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let fake = format!("http://{}/api", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
    let files = test_files();
    let mut config = test_config(files.path());
    config.discord.public_key = Some(hex(key.public_key().as_ref()).parse().expect("key"));
    config.discord.application_id = Some("APP1".to_owned());
    config.discord.bot_token = Some("bot-token".to_owned().into());
    config.discord.api_base_url = fake.clone();
    also(&mut config);
    let (app, workers) = crate::helpers::start(&db.pool, &config, background).await;
    DiscordTest {
        db,
        app,
        key,
        calls,
        files,
        fake,
        workers,
        http: reqwest::Client::new(),
    }
}

impl DiscordTest {
    async fn send(
        &self,
        body: &Value,
        signature: Option<String>,
        timestamp: i64,
    ) -> reqwest::Response {
        let body = body.to_string();
        let signature = signature.unwrap_or_else(|| {
            hex(self
                .key
                .sign(format!("{timestamp}{body}").as_bytes())
                .as_ref())
        });
        self.http
            .post(format!("{}/discord/interactions", self.app))
            .header("content-type", "application/json")
            .header("x-signature-ed25519", signature)
            .header("x-signature-timestamp", timestamp.to_string())
            .body(body)
            .send()
            .await
            .expect("the request reaches the service")
    }

    async fn interact(&self, body: Value) -> Value {
        let response = self.send(&body, None, chrono::Utc::now().timestamp()).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("json answer")
    }

    /// `/cert SUB` as registered by an earlier version: the arguments as one text option.
    async fn cert(&self, user: &str, sub: &str, text: &str) -> Value {
        let options = if text.is_empty() {
            json!([])
        } else {
            json!([{ "name": "text", "type": 3, "value": text }])
        };
        self.typed(user, sub, options).await
    }

    /// `/cert SUB` with typed options, as the registered command sends them.
    async fn typed(&self, user: &str, sub: &str, options: Value) -> Value {
        self.interact(json!({
            "type": 2,
            "id": "1",
            "application_id": "APP1",
            "token": format!("token-{user}"),
            "guild_id": "G1",
            "member": { "user": { "id": user, "username": user.to_lowercase() } },
            "data": { "name": "cert", "type": 1, "options": [{ "name": sub, "type": 1, "options": options }] },
        }))
        .await
    }

    /// What Discord offers while `user` types `typed` into `option` of `/cert SUB`.
    async fn autocomplete(&self, user: &str, sub: &str, option: &str, typed: &str) -> Vec<Value> {
        let answer = self
            .interact(json!({
                "type": 4,
                "id": "4",
                "application_id": "APP1",
                "token": "autocomplete",
                "user": { "id": user, "username": user },
                "data": { "name": "cert", "type": 1, "options": [{ "name": sub, "type": 1, "options": [
                    { "name": option, "type": 3, "value": typed, "focused": true },
                ] }] },
            }))
            .await;
        assert_eq!(answer["type"], 8, "{answer}");
        answer["data"]["choices"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `user` picks `values` in the select menu `custom_id`.
    async fn select(&self, user: &str, custom_id: &str, values: &[&str]) -> Value {
        self.interact(json!({
            "type": 3,
            "id": "5",
            "application_id": "APP1",
            "token": "select",
            "user": { "id": user, "username": user },
            "message": { "id": "M2", "channel_id": format!("DM-{user}") },
            "data": { "custom_id": custom_id, "component_type": 3, "values": values },
        }))
        .await
    }

    async fn click(&self, user: &str, custom_id: &str) -> Value {
        self.interact(json!({
            "type": 3,
            "id": "2",
            "application_id": "APP1",
            "token": "click",
            "user": { "id": user, "username": user },
            "message": { "id": "M1", "channel_id": format!("DM-{user}") },
            "data": { "custom_id": custom_id, "component_type": 2 },
        }))
        .await
    }

    async fn submit(&self, user: &str, custom_id: &str, values: &[(&str, &str)]) -> Value {
        let rows: Vec<Value> = values
            .iter()
            .map(|(id, value)| json!({ "type": 1, "components": [{ "type": 4, "custom_id": id, "value": value }] }))
            .collect();
        self.interact(json!({
            "type": 5,
            "id": "3",
            "application_id": "APP1",
            "token": "modal",
            "user": { "id": user, "username": user },
            "message": { "id": "M1", "channel_id": format!("DM-{user}") },
            "data": { "custom_id": custom_id, "components": rows },
        }))
        .await
    }

    fn calls_to(&self, prefix: &str) -> Vec<(String, Value)> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Links a Discord user to `email` the way a person does: the code comes by mail.
    async fn link(&self, user: &str, email: &str) {
        let asked = self.cert(user, "link", email).await;
        assert!(content(&asked).contains("on its way"), "{asked}");
        let code = std::fs::read_dir(self.files.path().join("mail"))
            .expect("mail dir")
            .filter_map(Result::ok)
            .map(|entry| std::fs::read_to_string(entry.path()).expect("mail"))
            .filter(|mail| mail.contains(email))
            .find_map(|mail| {
                mail.split("Your code is ")
                    .nth(1)
                    .map(|rest| rest.chars().take(8).collect::<String>())
            })
            .expect("a code in the mail");
        let linked = self.cert(user, "link", &format!("{email} {code}")).await;
        assert!(content(&linked).contains("Linked"), "{linked}");
    }

    async fn events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }
}

fn content(answer: &Value) -> String {
    answer["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn pings_are_answered_and_forged_or_stale_interactions_are_refused_with_nothing_changed() {
    let t = discord_app().await;
    let pong = t.interact(json!({ "type": 1 })).await;
    assert_eq!(pong, json!({ "type": 1 }));

    let before = t.events().await;
    let body = json!({ "type": 2, "data": { "name": "cert", "options": [{ "name": "list", "type": 1 }] } });
    let now = chrono::Utc::now().timestamp();
    let forged = t.send(&body, Some("00".repeat(64)), now).await;
    assert_eq!(forged.status(), 401);
    let garbled = t.send(&body, Some("not-hex".to_owned()), now).await;
    assert_eq!(garbled.status(), 401);
    // Signed, then the body altered.
    let signature = hex(t.key.sign(format!("{now}{body}").as_bytes()).as_ref());
    let tampered = t
        .http
        .post(format!("{}/discord/interactions", t.app))
        .header("x-signature-ed25519", &signature)
        .header("x-signature-timestamp", now.to_string())
        .body(body.to_string().replace("list", "help"))
        .send()
        .await
        .expect("send");
    assert_eq!(tampered.status(), 401);
    let stale = t.send(&body, None, now - 600).await;
    assert_eq!(stale.status(), 401);
    let future = t.send(&body, None, now + 600).await;
    assert_eq!(future.status(), 401, "a timestamp from the future");
    let huge = json!({ "type": 2, "pad": "a".repeat(2 * 1024 * 1024) });
    assert_eq!(
        t.send(&huge, None, now).await.status(),
        413,
        "oversized body"
    );
    // Signed, but not JSON as declared: refused after verification, without acting.
    let text = "type=2";
    let signature = hex(t.key.sign(format!("{now}{text}").as_bytes()).as_ref());
    let plain = t
        .http
        .post(format!("{}/discord/interactions", t.app))
        .header("content-type", "text/plain")
        .header("x-signature-ed25519", signature)
        .header("x-signature-timestamp", now.to_string())
        .body(text)
        .send()
        .await
        .expect("send");
    assert!(plain.status().is_client_error(), "{}", plain.status());
    let unsigned = t
        .http
        .post(format!("{}/discord/interactions", t.app))
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(unsigned.status(), 401);
    assert_eq!(t.events().await, before, "nothing was appended");
}

/// The codes mailed to `email` so far.
fn codes_mailed_to(t: &DiscordTest, email: &str) -> Vec<String> {
    std::fs::read_dir(t.files.path().join("mail"))
        .expect("mail dir")
        .filter_map(Result::ok)
        .map(|entry| std::fs::read_to_string(entry.path()).expect("mail"))
        .filter(|mail| mail.contains(email))
        .filter_map(|mail| {
            mail.split("Your code is ")
                .nth(1)
                .map(|rest| rest.chars().take(8).collect::<String>())
        })
        .collect()
}

#[tokio::test]
async fn guesses_at_a_link_code_are_counted_per_address_across_codes_accounts_and_races() {
    let t = discord_app().await;
    // One account guesses three times...
    let asked = t.cert("U1", "link", "root@example.com").await;
    assert!(content(&asked).contains("on its way"), "{asked}");
    for _ in 0..3 {
        let wrong = t.cert("U1", "link", "root@example.com 00000000").await;
        assert!(content(&wrong).contains("not right"), "{wrong}");
    }
    // ...a second asks for a fresh code and races twenty guesses: two more are heard.
    let asked = t.cert("U2", "link", "Root+x@example.com").await;
    assert!(content(&asked).contains("on its way"), "{asked}");
    let guesses: Vec<String> = (1..=20)
        .map(|i| format!("root@example.com {i:08}"))
        .collect();
    let answers =
        futures::future::join_all(guesses.iter().map(|guess| t.cert("U2", "link", guess))).await;
    let not_right = answers
        .iter()
        .filter(|a| content(a).contains("not right"))
        .count();
    let locked = answers
        .iter()
        .filter(|a| content(a).contains("is locked for linking until"))
        .count();
    assert_eq!((not_right, locked), (2, 18), "{answers:?}");
    // Locked: no new code for the address from any account, and even a right code fails.
    let asked = t.cert("U3", "link", "root@example.com").await;
    assert!(content(&asked).contains("locked"), "{asked}");
    let mut codes = codes_mailed_to(&t, "root@example.com");
    codes.extend(codes_mailed_to(&t, "Root+x@example.com"));
    assert_eq!(
        codes.len(),
        2,
        "one code to each form of the address, no more"
    );
    for code in codes {
        for user in ["U1", "U2"] {
            let late = t
                .cert(user, "link", &format!("root@example.com {code}"))
                .await;
            assert!(content(&late).contains("locked"), "{late}");
        }
    }
    // Another address is not affected, and its link is in the audit trail like the
    // refusals.
    t.link("U4", "john@example.com").await;
    crate::helpers::project(&t.db.pool).await;
    let audited: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_type, count(*) FROM audit_logs \
          WHERE event_type IN ('chat_account_linked', 'link_chat_account_refused') \
          GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&t.db.pool)
    .await
    .expect("audit");
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE resource_identifier = 'root@example.com' \
           AND event_type = 'link_chat_account_refused'",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("audit");
    assert!(
        audited.contains(&("chat_account_linked".to_owned(), 1)),
        "{audited:?}"
    );
    assert_eq!(refused, 5 + 18 + 1 + 4, "every wrong and every locked try");
}

#[tokio::test]
async fn an_unlinked_person_is_told_to_link_and_a_wrong_code_links_nothing() {
    let t = discord_app().await;
    let answer = t.cert("U1", "list", "").await;
    assert!(content(&answer).contains("/cert link"), "{answer}");
    assert_eq!(answer["data"]["flags"], 64, "only they see it");
    // Help needs nobody to be known: it answers before linking.
    let help = t.cert("U1", "help", "").await;
    assert!(content(&help).contains("/cert request"), "{help}");
    let asked = t.cert("U1", "link", "john@example.com").await;
    assert!(content(&asked).contains("on its way"), "{asked}");
    let again = t.cert("U1", "link", "john@example.com").await;
    assert!(content(&again).contains("less than a minute"), "{again}");
    let wrong = t.cert("U1", "link", "john@example.com 0000000x").await;
    assert!(content(&wrong).contains("not right"), "{wrong}");
    let other = t.cert("U1", "link", "root@example.com 12345678").await;
    assert!(
        content(&other).contains("not right") || content(&other).contains("first"),
        "a code for one address never links another: {other}"
    );
    let still = t.cert("U1", "list", "").await;
    assert!(content(&still).contains("/cert link"), "{still}");
}

#[tokio::test]
async fn a_configured_discord_bot_asks_its_approvers_in_the_service_as_serve_runs_it() {
    // Nothing stepped by hand: the feed consumers and the notifiers run as in production.
    let t = discord_app_started(Background::Running).await;
    approver(&service(&t.db), "jane@example.com").await;
    let within = std::time::Duration::from_secs(30);
    crate::helpers::until_known_as_approver(&t.db.pool, "jane@example.com").await;
    t.link("UJOHN", "john@example.com").await;
    t.link("UJANE", "jane@example.com").await;
    let filed = t
        .submit(
            "UJOHN",
            "request",
            &[
                ("common_name", "wired.example.com"),
                ("validity_days", "90"),
                ("justification", "Team dashboard"),
            ],
        )
        .await;
    let number = crate::helpers::request_number_in(&content(&filed));
    let asked = || {
        t.calls_to("POST /channels/DM-UJANE/messages")
            .iter()
            .any(|(_, m)| m.to_string().contains(&number))
    };
    eventually("Jane gets a DM with the buttons", within, || async {
        asked()
    })
    .await;
}

#[tokio::test]
async fn a_request_from_the_modal_is_approved_with_a_button_and_every_message_follows() {
    let t = discord_app().await;
    let commands = service(&t.db);
    approver(&commands, "jane@example.com").await;
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    t.link("UJOHN", "john@example.com").await;
    t.link("UJANE", "jane@example.com").await;

    // `/cert request` asks the questionnaire one select menu at a time, replacing its
    // private message, then recommends a CA and offers the details form.
    let mut step = t.typed("UJOHN", "request", json!([])).await;
    assert_eq!(step["type"], 4, "{step}");
    assert_eq!(step["data"]["flags"], 64, "private");
    let picks: [&[&str]; 10] = [
        &["web_server"],
        &["no"],
        &["no"],
        &["90_to_365"],
        &["production"],
        &["single"],
        &["single"],
        &["medium"],
        &["SOC2", "ISO27001"],
        &["notification"],
    ];
    for (n, pick) in picks.iter().enumerate() {
        assert!(
            content(&step).contains(&format!("Question {} of 10", n + 1)),
            "{step}"
        );
        let select = step["data"]["components"][0]["components"][0]["custom_id"]
            .as_str()
            .expect("a select menu")
            .to_owned();
        step = t.select("UJOHN", &select, pick).await;
        assert_eq!(step["type"], 7, "the message is replaced: {step}");
    }
    assert!(
        content(&step).contains("Recommended: the **internal** CA"),
        "{step}"
    );
    let follow = step["data"]["components"][0]["components"][0]["custom_id"]
        .as_str()
        .expect("the request button")
        .to_owned();
    let modal = t.click("UJOHN", &follow).await;
    assert_eq!(modal["type"], 9, "{modal}");
    let form = modal["data"]["custom_id"]
        .as_str()
        .expect("the modal's id")
        .to_owned();
    let filed = t
        .submit(
            "UJOHN",
            &form,
            &[
                ("common_name", "discord.example.com"),
                ("validity_days", "90"),
                ("justification", "Team dashboard"),
            ],
        )
        .await;
    let text = content(&filed);
    assert!(text.contains("is submitted"), "{filed}");
    let number = crate::helpers::request_number_in(&text);
    // The questionnaire's answers are the request's own, as from Slack's form.
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let (service, compliance): (String, Vec<String>) = sqlx::query_as(
        "SELECT a.service_type, a.compliance_requirements FROM recommendation_answers a \
           JOIN certificate_requests r ON r.id = a.request_id WHERE r.request_number = $1",
    )
    .bind(&number)
    .fetch_one(&t.db.pool)
    .await
    .expect("answers recorded");
    assert_eq!(service, "web_server");
    assert_eq!(compliance.len(), 2, "{compliance:?}");

    // Jane (linked) gets a DM with the buttons; root (never linked) cannot be reached here.
    let notifier = t
        .workers
        .notifier("discord")
        .expect("Discord is configured");
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]);
    deliver().await;
    let dms = t.calls_to("POST /channels/DM-UJANE/messages");
    assert_eq!(dms.len(), 1, "{dms:?}");
    let buttons = &dms[0].1["components"][0]["components"];
    assert_eq!(buttons[0]["custom_id"], format!("approve:{number}"));
    assert!(
        dms[0].1["content"]
            .as_str()
            .unwrap_or_default()
            .contains("discord.example.com")
    );

    // John cannot approve his own request; Jane's click updates the message in place.
    let own = t.click("UJOHN", &format!("approve:{number}")).await;
    assert!(content(&own).contains("own"), "{own}");
    let approved = t.click("UJANE", &format!("approve:{number}")).await;
    assert_eq!(approved["type"], 7, "{approved}");
    assert!(
        content(&approved).contains("Approved by jane@example.com"),
        "{approved}"
    );
    assert_eq!(
        approved["data"]["components"],
        json!([]),
        "the buttons are gone"
    );

    deliver().await;
    let edits = t.calls_to("PATCH /channels/DM-UJANE/messages/");
    assert_eq!(edits.len(), 1, "the DM copy is updated: {edits:?}");
    assert!(
        edits[0].1["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Approved by jane@example.com")
    );
    assert_eq!(
        edits[0].1["content"], approved["data"]["content"],
        "one renderer: the clicked message is the notifier's copy"
    );
    let told = t.calls_to("POST /channels/DM-UJOHN/messages");
    assert!(
        told.iter().any(|(_, m)| m["content"]
            .as_str()
            .unwrap_or_default()
            .contains("is approved")),
        "the requester hears it: {told:?}"
    );
    // One identity per e-mail: the approval is Jane's, whichever platform she used.
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let approver: String = sqlx::query_scalar(
        "SELECT u.email FROM approvals a JOIN users u ON u.id = a.approver_id \
          WHERE a.status = 'approved'",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("approval");
    assert_eq!(approver, "jane@example.com");
}

#[tokio::test]
async fn a_rejection_asks_the_reason_in_a_modal() {
    let t = discord_app().await;
    let commands = service(&t.db);
    approver(&commands, "jane@example.com").await;
    t.link("UJOHN", "john@example.com").await;
    t.link("UJANE", "jane@example.com").await;
    let filed = t
        .cert("UJOHN", "request", "cn=no.example.com days=90 why=testing")
        .await;
    let number = crate::helpers::request_number_in(&content(&filed));
    let modal = t.click("UJANE", &format!("reject:{number}")).await;
    assert_eq!(modal["type"], 9);
    assert_eq!(modal["data"]["custom_id"], format!("reject:{number}"));
    let rejected = t
        .submit(
            "UJANE",
            &format!("reject:{number}"),
            &[("reason", "wrong team")],
        )
        .await;
    assert_eq!(rejected["type"], 7, "{rejected}");
    assert!(
        content(&rejected).contains("Rejected by jane@example.com"),
        "{rejected}"
    );
    assert!(content(&rejected).contains("wrong team"));
    let status = t.cert("UJOHN", "status", &number).await;
    assert!(content(&status).contains("rejected"), "{status}");
}

#[tokio::test]
async fn the_registered_command_fits_discords_limits() {
    let t = discord_app().await;
    let commands = cert_assistant::chat::discord::application_commands();
    let subcommands = commands[0]["options"].as_array().expect("subcommands");
    assert!(subcommands.len() <= 25);
    for sub in subcommands {
        let name = sub["name"].as_str().expect("name");
        assert!(
            name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_'),
            "{name}"
        );
        assert!(
            sub["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty() && d.chars().count() <= 100)
        );
    }
    // As `cert-assistant discord register` does it.
    let api = cert_assistant::chat::discord::api::DiscordApi::new(
        &t.fake,
        "APP1",
        "bot-token".to_owned().into(),
    );
    let registered = api
        .register_commands(None, &commands)
        .await
        .expect("registered");
    assert_eq!(registered, commands);
    assert_eq!(t.calls_to("PUT commands").len(), 1);
}

#[tokio::test]
async fn buttons_past_what_the_service_takes_on_are_answered_busy() {
    let t = discord_app_with(Background::Stepped, |config| {
        config.chat.max_in_flight = 1;
        config.chat.busy_after_ms = 0;
    })
    .await;
    let clicks = (0..20).map(|_| t.click("U1", "approve:REQ-20261203-00001"));
    let answers = futures::future::join_all(clicks).await;
    let busy = answers
        .iter()
        .filter(|a| content(a).contains("is busy right now and did nothing"))
        .count();
    assert!(busy > 0, "some clicks found no place: {answers:?}");
    for answer in &answers {
        let text = content(answer);
        assert!(
            text.contains("is busy right now") || text.contains("/cert link"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn typed_options_run_commands_and_autocomplete_offers_only_what_is_the_persons() {
    let t = discord_app().await;
    let commands = service(&t.db);
    approver(&commands, "jane@example.com").await;
    t.link("UJOHN", "john@example.com").await;
    t.link("UJANE", "jane@example.com").await;
    let filed = t
        .typed(
            "UJOHN",
            "request",
            json!([
                { "name": "cn", "type": 3, "value": "typed.example.com" },
                { "name": "why", "type": 3, "value": "a \"quoted\" reason" },
                { "name": "days", "type": 4, "value": 90 },
            ]),
        )
        .await;
    let text = content(&filed);
    assert!(text.contains("is submitted"), "{filed}");
    let number = crate::helpers::request_number_in(&text);
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");

    // John is offered his own request; Jane, an approver, what waits for her decision.
    let offered = t.autocomplete("UJOHN", "status", "request", "req").await;
    assert_eq!(offered.len(), 1, "{offered:?}");
    assert_eq!(offered[0]["value"], number.as_str());
    assert!(
        offered[0]["name"]
            .as_str()
            .unwrap_or_default()
            .contains("typed.example.com")
    );
    let to_decide = t.autocomplete("UJANE", "approve", "subject", "typed").await;
    assert_eq!(to_decide.len(), 1, "{to_decide:?}");
    assert!(
        t.autocomplete("UJOHN", "approve", "subject", "")
            .await
            .is_empty(),
        "not an approver"
    );
    assert!(
        t.autocomplete("UJANE", "renew", "serial", "")
            .await
            .is_empty(),
        "no certificates"
    );
    assert!(
        t.autocomplete("USTRANGER", "status", "request", "")
            .await
            .is_empty(),
        "not linked"
    );
    assert!(
        t.autocomplete("UJOHN", "status", "request", "nothing-like-it")
            .await
            .is_empty()
    );

    // Typed options carry what a text line could not: quotes, and no parsing of words.
    let status = t
        .typed(
            "UJOHN",
            "status",
            json!([{ "name": "request", "type": 3, "value": number }]),
        )
        .await;
    assert!(content(&status).contains("pending"), "{status}");
    let rejected = t
        .typed(
            "UJANE",
            "reject",
            json!([
                { "name": "subject", "type": 3, "value": number },
                { "name": "reason", "type": 3, "value": "use \"prod\" names" },
            ]),
        )
        .await;
    assert!(content(&rejected).contains("rejected"), "{rejected}");
    let missing = t
        .typed(
            "UJANE",
            "reject",
            json!([{ "name": "subject", "type": 3, "value": number }]),
        )
        .await;
    assert!(content(&missing).contains("`reason`"), "{missing}");
}
