//! Microsoft Teams, driven the way the Bot Framework drives it: activities with RS256 Bearer
//! tokens (signed by a locally generated key published through local OpenID metadata) over
//! real HTTP, and a local connector that records replies, conversations and card updates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use cert_assistant::app::Workers;
use cert_assistant::config::Config;
use cert_assistant::feed::Projector;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::PublicKeyData as _;
use serde_json::{Value, json};
use x509_parser::prelude::FromDer as _;

use crate::fixtures::{approver, service};
use crate::helpers::{Background, TestDb, eventually, test_config, test_files};

const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "tenant-1";
const PASSWORD: &str = "bot-password";

type Calls = Arc<Mutex<Vec<(String, Value)>>>;

#[derive(Clone)]
struct Fake {
    base: String,
    jwks: Value,
    calls: Calls,
    emails: Arc<HashMap<&'static str, &'static str>>,
}

impl Fake {
    fn record(&self, what: String, body: Value) -> usize {
        let mut calls = self.calls.lock().expect("lock");
        calls.push((what, body));
        calls.len()
    }
}

async fn openid(State(fake): State<Fake>) -> Json<Value> {
    fake.record("openid".to_owned(), Value::Null);
    Json(
        json!({ "issuer": "https://api.botframework.com", "jwks_uri": format!("{}/keys", fake.base) }),
    )
}

async fn keys(State(fake): State<Fake>) -> Json<Value> {
    Json(fake.jwks.clone())
}

async fn token(
    State(fake): State<Fake>,
    axum::extract::Query(query): Query,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    fake.record(
        "token".to_owned(),
        json!({ "client_id": form.get("client_id"), "scope": form.get("scope"), "tenant": query.get("tenant") }),
    );
    if form.get("client_secret").map(String::as_str) != Some(PASSWORD) {
        return Err(axum::http::StatusCode::UNAUTHORIZED);
    }
    Ok(Json(
        json!({ "access_token": "connector-token", "expires_in": 3600 }),
    ))
}

async fn create_conversation(State(fake): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    let member = body["members"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    fake.record("create conversation".to_owned(), body);
    Json(json!({ "id": format!("conv-{member}") }))
}

async fn send(
    State(fake): State<Fake>,
    Path(conversation): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let n = fake.record(format!("send {conversation}"), body);
    Json(json!({ "id": format!("A{n}") }))
}

async fn reply(
    State(fake): State<Fake>,
    Path((conversation, _id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let n = fake.record(format!("reply {conversation}"), body);
    Json(json!({ "id": format!("A{n}") }))
}

async fn update(
    State(fake): State<Fake>,
    Path((conversation, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Json<Value> {
    fake.record(format!("update {conversation} {id}"), body);
    Json(json!({ "id": id }))
}

async fn member(
    State(fake): State<Fake>,
    Path((_conversation, user)): Path<(String, String)>,
) -> Json<Value> {
    fake.record(format!("member {user}"), Value::Null);
    let email = fake.emails.get(user.as_str()).copied().unwrap_or_default();
    Json(json!({ "id": user, "name": user, "email": email, "userPrincipalName": email }))
}

/// The people of the tenant's directory (Graph): e-mail, object id. Bob's app cannot be
/// installed (a tenant whose admin did not grant the permission for him).
const DIRECTORY: [(&str, &str); 3] = [
    ("ann@example.com", "aad-ann"),
    ("root@example.com", "aad-root"),
    ("bob@example.com", "aad-bob"),
];

type Query = axum::extract::Query<HashMap<String, String>>;

async fn graph_users(State(fake): State<Fake>, axum::extract::Query(q): Query) -> Json<Value> {
    let filter = q.get("$filter").cloned().unwrap_or_default();
    fake.record("graph users".to_owned(), json!({ "filter": filter }));
    let found: Vec<Value> = DIRECTORY
        .iter()
        .filter(|(email, _)| filter.contains(&format!("mail eq '{email}'")))
        .map(|(_, id)| json!({ "id": id }))
        .collect();
    Json(json!({ "value": found }))
}

async fn graph_catalog(State(fake): State<Fake>, axum::extract::Query(q): Query) -> Json<Value> {
    let filter = q.get("$filter").cloned().unwrap_or_default();
    fake.record("graph catalog".to_owned(), json!({ "filter": filter }));
    let apps = if filter == format!("externalId eq '{APP_ID}'") {
        json!([{ "id": "catalog-1", "externalId": APP_ID }])
    } else {
        json!([])
    };
    Json(json!({ "value": apps }))
}

async fn graph_install(
    State(fake): State<Fake>,
    Path(user): Path<String>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    fake.record(format!("graph install {user}"), body.clone());
    if user == "aad-bob" {
        let denied = json!({ "error": { "code": "Forbidden", "message": "Missing role permissions on the request." } });
        return (axum::http::StatusCode::FORBIDDEN, Json(denied)).into_response();
    }
    let installed = fake
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|(what, _)| *what == format!("graph install {user}"))
        .count();
    if installed > 1 {
        return axum::http::StatusCode::CONFLICT.into_response();
    }
    axum::http::StatusCode::CREATED.into_response()
}

async fn graph_installed(
    State(fake): State<Fake>,
    Path(user): Path<String>,
    axum::extract::Query(q): Query,
) -> Json<Value> {
    fake.record(
        format!("graph installed {user}"),
        json!({ "filter": q.get("$filter") }),
    );
    Json(json!({ "value": [{ "id": format!("install-{user}") }] }))
}

async fn graph_chat(
    State(fake): State<Fake>,
    Path((user, installation)): Path<(String, String)>,
) -> Json<Value> {
    fake.record(format!("graph chat {user} {installation}"), Value::Null);
    Json(json!({ "id": format!("19:{user}-chat") }))
}

/// The local Bot Framework: OpenID metadata and keys, the token endpoint, and the
/// connector's conversation API; and the Microsoft Graph calls of proactive installation.
struct TeamsFake {
    base: String,
    key: EncodingKey,
    other_key: EncodingKey,
    calls: Calls,
}

impl TeamsFake {
    /// Points the configuration's Teams bot at this fake.
    fn configure(&self, config: &mut Config) {
        config.teams.app_id = Some(APP_ID.to_owned());
        config.teams.app_password = Some(PASSWORD.to_owned().into());
        config.teams.openid_metadata_url = format!("{}/openid", self.base);
        config.teams.issuer = "https://api.botframework.com".to_owned();
        config.teams.token_url = Some(format!("{}/token", self.base));
        config.teams.graph_url = format!("{}/graph", self.base);
        config.teams.graph_token_url = format!("{}/token?tenant={{tenant}}", self.base);
        config.teams.service_url = format!("{}/teams/", self.base);
        // A multi-tenant bot serving one tenant.
        config.teams.allowed_tenants = vec![TENANT.to_owned()];
    }
}

struct TeamsTest {
    db: TestDb,
    app: String,
    service_url: String,
    key: EncodingKey,
    other_key: EncodingKey,
    calls: Calls,
    workers: Workers,
    http: reqwest::Client,
    _files: Option<tempfile::TempDir>,
}

fn b64(bytes: &[u8]) -> String {
    let bytes = match bytes {
        [0, rest @ ..] => rest,
        all => all,
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key() -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .expect("rsa");
    let spki = pair.subject_public_key_info();
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).expect("spki");
    let x509_parser::public_key::PublicKey::RSA(rsa) = info.parsed().expect("parsed") else {
        panic!("not RSA");
    };
    let jwk = json!({ "kty": "RSA", "kid": "k1", "use": "sig", "n": b64(rsa.modulus), "e": b64(rsa.exponent), "endorsements": ["msteams", "webchat"] });
    (
        EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).expect("encoding key"),
        jwk,
    )
}

async fn teams_app() -> TeamsTest {
    teams_app_on(TestDb::new().await).await
}

async fn teams_fake() -> TeamsFake {
    let (key, jwk) = rsa_key();
    let (other_key, _) = rsa_key();
    let calls: Calls = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let fake = Fake {
        base: base.clone(),
        jwks: json!({ "keys": [jwk] }),
        calls: calls.clone(),
        emails: Arc::new(HashMap::from([
            ("29:john", "john@example.com"),
            ("29:jane", "jane@example.com"),
            ("29:root", "root@example.com"),
        ])),
    };
    let router = Router::new()
        .route("/openid", get(openid))
        .route("/keys", get(keys))
        .route("/token", post(token))
        .route("/teams/v3/conversations", post(create_conversation))
        .route(
            "/teams/v3/conversations/{conversation}/activities",
            post(send),
        )
        .route(
            "/teams/v3/conversations/{conversation}/activities/{id}",
            post(reply).put(update),
        )
        .route(
            "/teams/v3/conversations/{conversation}/members/{user}",
            get(member),
        )
        .route("/graph/users", get(graph_users))
        .route("/graph/appCatalogs/teamsApps", get(graph_catalog))
        .route(
            "/graph/users/{user}/teamwork/installedApps",
            post(graph_install).get(graph_installed),
        )
        .route(
            "/graph/users/{user}/teamwork/installedApps/{installation}/chat",
            get(graph_chat),
        )
        .with_state(fake);
    tokio::spawn(async move { axum::serve(listener, router).await });
    TeamsFake {
        base,
        key,
        other_key,
        calls,
    }
}

async fn teams_app_on(db: TestDb) -> TeamsTest {
    teams_app_started(db, Background::Stepped).await
}

/// Teams configured on a service whose `background` runs as given.
async fn teams_app_started(db: TestDb, background: Background) -> TeamsTest {
    let fake = teams_fake().await;
    let files = test_files();
    let mut config = test_config(files.path());
    fake.configure(&mut config);
    let (app, workers) = crate::helpers::start(&db.pool, &config, background).await;
    TeamsTest::over(fake, db, app, workers, Some(files))
}

impl TeamsTest {
    /// Teams as the service at `app` (built with `fake` configured) sees it.
    fn over(
        fake: TeamsFake,
        db: TestDb,
        app: String,
        workers: Workers,
        files: Option<tempfile::TempDir>,
    ) -> Self {
        Self {
            db,
            app,
            service_url: format!("{}/teams/", fake.base),
            key: fake.key,
            other_key: fake.other_key,
            calls: fake.calls,
            workers,
            http: reqwest::Client::new(),
            _files: files,
        }
    }

    fn token(&self, key: &EncodingKey, audience: &str, service_url: &str) -> String {
        self.token_with_kid("k1", key, audience, service_url)
    }

    fn token_with_kid(
        &self,
        kid: &str,
        key: &EncodingKey,
        audience: &str,
        service_url: &str,
    ) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": "https://api.botframework.com",
            "aud": audience,
            "exp": now + 600,
            "nbf": now - 10,
            "serviceurl": service_url,
        });
        jsonwebtoken::encode(&header, &claims, key).expect("token")
    }

    fn activity(&self, user: &str, kind: &str, extra: Value) -> Value {
        let mut activity = json!({
            "type": kind,
            "id": "act-1",
            "channelId": "msteams",
            "serviceUrl": self.service_url,
            "from": { "id": user, "name": user.trim_start_matches("29:"), "aadObjectId": "aad" },
            "conversation": { "id": format!("personal-{user}"), "conversationType": "personal", "tenantId": TENANT },
            "recipient": { "id": format!("28:{APP_ID}") },
            "channelData": { "tenant": { "id": TENANT } },
        });
        if let (Some(activity), Some(extra)) = (activity.as_object_mut(), extra.as_object()) {
            activity.extend(extra.clone());
        }
        activity
    }

    async fn post(&self, activity: &Value, token: Option<String>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/api/messages", self.app))
            .json(activity);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("reaches the service")
    }

    async fn send(&self, activity: Value) -> Value {
        let token = self.token(&self.key, APP_ID, &self.service_url);
        let response = self.post(&activity, Some(token)).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap_or(Value::Null)
    }

    /// Types a message to the bot; returns the text of the bot's reply.
    async fn say(&self, user: &str, text: &str) -> String {
        self.send(self.activity(user, "message", json!({ "text": text })))
            .await;
        let replies = self.calls_to(&format!("reply personal-{user}"));
        replies
            .last()
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    }

    async fn click(&self, user: &str, verb: &str, data: Value) -> Value {
        self.send(self.activity(
            user,
            "invoke",
            json!({ "name": "adaptiveCard/action", "value": { "action": { "type": "Action.Execute", "verb": verb, "data": data } } }),
        ))
        .await
    }

    /// The local Bot Framework's and Graph's base URL.
    fn base(&self) -> &str {
        self.service_url.trim_end_matches("/teams/")
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

    async fn events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }
}

#[tokio::test]
async fn a_private_answer_asked_for_in_a_channel_goes_to_the_person_alone() {
    let t = teams_app().await;
    let commands = service(&t.db);
    let jane = approver(&commands, "jane@example.com").await;
    crate::helpers::project(&t.db.pool).await;
    let submitted = commands
        .submit_request(
            &crate::fixtures::ctx("john@example.com"),
            crate::fixtures::web_request("channel.example.com"),
        )
        .await
        .expect("submitted");
    crate::helpers::project(&t.db.pool).await;
    commands
        .approve(&jane, &submitted.request_number, None)
        .await
        .expect("approved");
    let s = crate::saga::saga(&t.db).await;
    crate::saga::feed(&t.db).await;
    s.worker.step().await.expect("issued");
    let serial: String = sqlx::query_scalar("SELECT serial FROM embedded_ca_certificates")
        .fetch_one(&t.db.pool)
        .await
        .expect("serial");

    // John asks for his key's link in a team channel.
    let asked = t.activity(
        "29:john",
        "message",
        json!({
            "text": format!("<at>cert-assistant</at> cert download {serial} private_key"),
            "conversation": {
                "id": "19:team-channel@thread.tacv2",
                "conversationType": "channel",
                "tenantId": TENANT,
            },
        }),
    );
    t.send(asked).await;
    let in_channel = t.calls_to("reply 19:team-channel@thread.tacv2");
    assert_eq!(in_channel.len(), 1, "{in_channel:?}");
    let said = in_channel[0].1.to_string();
    assert!(said.contains("direct message"), "{said}");
    assert!(
        !said.contains("shown only here") && !said.contains("/downloads/"),
        "the link or its passphrase reached the channel: {said}"
    );
    let direct = t.calls_to("send conv-29:john");
    assert_eq!(direct.len(), 1, "{direct:?}");
    let sent = direct[0].1.to_string();
    assert!(
        sent.contains("shown only here") && sent.contains("/downloads/"),
        "{sent}"
    );
}

#[tokio::test]
async fn unknown_key_ids_cause_one_key_fetch_however_many_arrive_at_once() {
    let t = teams_app().await;
    let activity = t.activity("29:john", "message", json!({ "text": "cert help" }));
    // The known key works (and fetches the keys once).
    t.send(activity.clone()).await;
    let fetches = || t.calls_to("openid").len();
    assert_eq!(fetches(), 1);
    // Within the minute after it, 50 tokens naming unknown keys at once fetch nothing more
    // (the negative answer is cached), and all are refused.
    let tokens: Vec<String> = (0..50)
        .map(|i| t.token_with_kid(&format!("unknown-{i}"), &t.key, APP_ID, &t.service_url))
        .collect();
    let answers = futures::future::join_all(
        tokens
            .iter()
            .map(|token| t.post(&activity, Some(token.clone()))),
    )
    .await;
    assert!(answers.iter().all(|a| a.status() == 401));
    assert_eq!(
        fetches(),
        1,
        "unknown ids are not worth a fetch within the minute"
    );
}

#[tokio::test]
async fn the_first_tokens_at_once_share_one_key_fetch() {
    let t = teams_app().await;
    let activity = t.activity("29:john", "message", json!({ "text": "cert help" }));
    let tokens: Vec<String> = (0..30)
        .map(|i| t.token_with_kid(&format!("unknown-{i}"), &t.key, APP_ID, &t.service_url))
        .collect();
    let answers = futures::future::join_all(
        tokens
            .iter()
            .map(|token| t.post(&activity, Some(token.clone()))),
    )
    .await;
    assert!(answers.iter().all(|a| a.status() == 401));
    assert_eq!(t.calls_to("openid").len(), 1, "one fetch for all of them");
}

#[tokio::test]
async fn tokens_that_are_missing_forged_or_meant_for_something_else_are_refused() {
    let t = teams_app().await;
    let before = t.events().await;
    let activity = t.activity(
        "29:john",
        "message",
        json!({ "text": "cert request cn=x.example.com why=y" }),
    );
    assert_eq!(t.post(&activity, None).await.status(), 401);
    assert_eq!(
        t.post(&activity, Some("garbage".to_owned())).await.status(),
        401
    );
    let forged = t.token(&t.other_key, APP_ID, &t.service_url);
    assert_eq!(
        t.post(&activity, Some(forged)).await.status(),
        401,
        "signed by another key"
    );
    let other_bot = t.token(&t.key, "another-app", &t.service_url);
    assert_eq!(
        t.post(&activity, Some(other_bot)).await.status(),
        401,
        "another audience"
    );
    let elsewhere = t.token(&t.key, APP_ID, "https://evil.example.com/");
    assert_eq!(
        t.post(&activity, Some(elsewhere)).await.status(),
        403,
        "another service URL"
    );
    let mut skype = activity.clone();
    skype["channelId"] = json!("skype");
    let token = t.token(&t.key, APP_ID, &t.service_url);
    assert_eq!(
        t.post(&skype, Some(token)).await.status(),
        403,
        "key not endorsed for the channel"
    );
    let mut huge = activity.clone();
    huge["text"] = json!("a".repeat(3 * 1024 * 1024));
    let token = t.token(&t.key, APP_ID, &t.service_url);
    assert_eq!(
        t.post(&huge, Some(token)).await.status(),
        413,
        "oversized body"
    );
    let token = t.token(&t.key, APP_ID, &t.service_url);
    let garbage = t
        .http
        .post(format!("{}/api/messages", t.app))
        .bearer_auth(token)
        .body("not an activity")
        .send()
        .await
        .expect("send");
    assert_eq!(garbage.status(), 400, "not JSON");
    // Signed, but from a tenant that is not served, from Web Chat, or naming its tenant only
    // where any client can write it: refused before anything is looked up or remembered.
    let refused = async |activity: Value, expected: &str| {
        let token = t.token(&t.key, APP_ID, &t.service_url);
        let response = t.post(&activity, Some(token)).await;
        assert_eq!(response.status(), 403, "{expected}");
        let body = response.text().await.expect("body");
        assert!(body.contains(expected), "{body}");
    };
    let mut foreign = activity.clone();
    foreign["conversation"]["tenantId"] = json!("other-tenant");
    foreign["channelData"]["tenant"]["id"] = json!("other-tenant");
    refused(foreign, "tenant other-tenant is not served here").await;
    let mut webchat = activity.clone();
    webchat["channelId"] = json!("webchat");
    refused(webchat, "only Microsoft Teams is served here").await;
    let mut untenanted = activity.clone();
    untenanted["conversation"]
        .as_object_mut()
        .expect("conversation")
        .remove("tenantId");
    refused(untenanted, "the activity names no tenant").await;
    assert_eq!(t.events().await, before, "nothing was appended");
    assert!(t.calls_to("reply").is_empty(), "nobody was answered");
    assert!(t.calls_to("member").is_empty(), "nobody was looked up");
    let remembered: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM chat_identities) + (SELECT count(*) FROM teams_service_urls)",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("count");
    assert_eq!(remembered, 0, "nothing was remembered");
}

#[tokio::test]
async fn a_configured_teams_bot_asks_its_approvers_in_the_service_as_serve_runs_it() {
    // Nothing stepped by hand: the feed consumers and the notifiers run as in production.
    let t = teams_app_started(TestDb::new().await, Background::Running).await;
    approver(&service(&t.db), "jane@example.com").await;
    crate::helpers::until_known_as_approver(&t.db.pool, "jane@example.com").await;
    // Jane has talked to the bot once, so she can be reached proactively.
    t.say("29:jane", "<at>cert-assistant</at> cert help").await;

    let answer = t
        .say(
            "29:john",
            "<at>cert-assistant</at> cert request cn=wired.example.com days=90 why=\"Intranet\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&answer);
    eventually("Jane gets the approval card", WITHIN, || async {
        !t.calls_to("send conv-29:jane").is_empty()
    })
    .await;
    let card = &t.calls_to("send conv-29:jane")[0].1["attachments"][0]["content"];
    assert_eq!(card["actions"][0]["verb"], "approve");
    assert_eq!(card["actions"][0]["data"]["subject"], number.as_str());
}

#[tokio::test]
async fn people_who_never_wrote_to_the_bot_are_reached_through_graph_and_admins_hear_who_is_not() {
    let t = teams_app().await;
    let commands = service(&t.db);
    approver(&commands, "ann@example.com").await;
    approver(&commands, "bob@example.com").await;
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let answer = t
        .say(
            "29:john",
            "<at>cert-assistant</at> cert request cn=first.example.com days=90 why=\"Intranet\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&answer);
    let notifier = t.workers.notifier("teams").expect("Teams is configured");
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]);
    deliver().await;

    // Ann never wrote to the bot: found in the directory by her e-mail, the app installed
    // for her from the organisation's catalog, and the card sent to her chat with it.
    let installs = t.calls_to("graph install aad-ann");
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert_eq!(
        installs[0].1["teamsApp@odata.bind"],
        format!("{}/graph/appCatalogs/teamsApps/catalog-1", t.base())
    );
    let cards = t.calls_to("send 19:aad-ann-chat");
    assert_eq!(cards.len(), 1, "{cards:?}");
    let card = &cards[0].1["attachments"][0]["content"];
    assert_eq!(card["actions"][0]["verb"], "approve");
    assert_eq!(card["actions"][0]["data"]["subject"], number.as_str());
    assert!(
        t.calls_to("token").iter().any(|(_, c)| c["scope"]
            == "https://graph.microsoft.com/.default"
            && c["tenant"] == TENANT),
        "a Graph token of the tenant: {:?}",
        t.calls_to("token")
    );
    // Someone the directory does not know is simply not on Teams: nobody is told.
    assert!(t.calls_to("graph install aad-john").is_empty());

    // Bob's installation is refused: the admins (root, reached the same way) are told who
    // was not asked and what the bot's registration lacks.
    let to_root = t.calls_to("send 19:aad-root-chat");
    let notice: Vec<String> = to_root
        .iter()
        .map(|(_, m)| m.to_string())
        .filter(|m| m.contains("cannot be reached on Teams"))
        .collect();
    assert_eq!(notice.len(), 1, "{to_root:?}");
    assert!(
        notice[0].contains("bob@example.com")
            && notice[0].contains(&number)
            && notice[0].contains("TeamsAppInstallation.ReadWriteSelfForUser.All"),
        "{}",
        notice[0]
    );
    assert!(!notice[0].contains(PASSWORD) && !notice[0].contains("connector-token"));

    // The next request finds the app installed already (Graph answers 409) and asks Ann in
    // the same chat.
    t.say(
        "29:john",
        "<at>cert-assistant</at> cert request cn=second.example.com days=90 why=\"Intranet\"",
    )
    .await;
    deliver().await;
    assert_eq!(t.calls_to("graph install aad-ann").len(), 2);
    assert_eq!(t.calls_to("send 19:aad-ann-chat").len(), 2);
}

#[tokio::test]
async fn with_proactive_messages_off_the_admins_are_told_who_cannot_be_reached() {
    let fake = teams_fake().await;
    let files = test_files();
    let mut config = test_config(files.path());
    fake.configure(&mut config);
    config.teams.proactive = false;
    let db = TestDb::new().await;
    let (app, workers) = crate::helpers::start(&db.pool, &config, Background::Stepped).await;
    let t = TeamsTest::over(fake, db, app, workers, Some(files));
    approver(&service(&t.db), "ann@example.com").await;
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    // Root, an admin, wrote to the bot once; Ann never did.
    t.say("29:root", "<at>cert-assistant</at> cert help").await;
    let answer = t
        .say(
            "29:john",
            "<at>cert-assistant</at> cert request cn=off.example.com days=90 why=\"Intranet\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&answer);
    let notifier = t.workers.notifier("teams").expect("Teams is configured");
    crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]).await;
    assert!(t.calls_to("graph").is_empty(), "Graph is not asked");
    let to_root: Vec<String> = t
        .calls_to("send conv-29:root")
        .iter()
        .map(|(_, m)| m.to_string())
        .filter(|m| m.contains("cannot be reached on Teams"))
        .collect();
    assert_eq!(to_root.len(), 1, "{:?}", t.calls_to("send"));
    assert!(
        to_root[0].contains("ann@example.com")
            && to_root[0].contains(&number)
            && to_root[0].contains("teams.proactive"),
        "{}",
        to_root[0]
    );
}

/// How long a test waits for the running service's background to do something.
const WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test]
async fn a_request_typed_in_teams_is_approved_on_its_card_and_everyone_sees_the_same_story() {
    let t = teams_app().await;
    let commands = service(&t.db);
    approver(&commands, "jane@example.com").await;
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    // Jane has talked to the bot once, so she can be reached proactively.
    let help = t.say("29:jane", "<at>cert-assistant</at> cert help").await;
    assert!(help.contains("/cert"), "{help}");

    let answer = t
        .say(
            "29:john",
            "<at>cert-assistant</at> cert request cn=teams.example.com days=90 why=\"Intranet\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&answer);

    let notifier = t.workers.notifier("teams").expect("Teams is configured");
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [notifier]);
    deliver().await;
    let opened = t.calls_to("create conversation");
    assert!(
        opened
            .iter()
            .any(|(_, c)| c["members"][0]["id"] == "29:jane" && c["tenantId"] == TENANT),
        "a proactive conversation with Jane: {opened:?}"
    );
    let cards = t.calls_to("send conv-29:jane");
    assert_eq!(cards.len(), 1, "{cards:?}");
    let card = &cards[0].1["attachments"][0]["content"];
    assert_eq!(card["actions"][0]["verb"], "approve");
    assert_eq!(card["actions"][0]["data"]["subject"], number.as_str());
    assert!(
        !t.calls_to("token").is_empty(),
        "the bot used its own token"
    );

    // John cannot approve his own request; Jane's click replaces the card.
    let own = t
        .click("29:john", "approve", json!({ "subject": number }))
        .await;
    assert_eq!(own["type"], "application/vnd.microsoft.activity.message");
    assert!(
        own["value"].as_str().unwrap_or_default().contains("own"),
        "{own}"
    );
    let approved = t
        .click("29:jane", "approve", json!({ "subject": number }))
        .await;
    assert_eq!(approved["statusCode"], 200);
    assert_eq!(approved["type"], "application/vnd.microsoft.card.adaptive");
    assert!(
        approved["value"].to_string().contains("Approved by jane"),
        "{approved}"
    );
    assert_eq!(approved["value"]["actions"], json!([]), "no buttons left");

    deliver().await;
    let updates = t.calls_to("update conv-29:jane");
    assert_eq!(updates.len(), 1, "Jane's copy is updated: {updates:?}");
    assert!(
        updates[0]
            .1
            .to_string()
            .contains("Approved by jane@example.com")
    );
    assert_eq!(
        updates[0].1["attachments"][0]["content"], approved["value"],
        "one renderer: the clicked card is the notifier's copy"
    );
    let told = t.calls_to("send conv-29:john");
    assert!(
        told.iter()
            .any(|(_, m)| m.to_string().contains("is approved")),
        "John hears of it: {told:?}"
    );
    // The same story from either side.
    let status = t.say("29:john", &format!("cert status {number}")).await;
    assert!(
        status.contains("approved") || status.contains("in_progress"),
        "{status}"
    );
}

#[tokio::test]
async fn the_request_dialog_opens_and_files_a_request() {
    let t = teams_app().await;
    let dialog = t
        .send(t.activity(
            "29:john",
            "invoke",
            json!({ "name": "task/fetch", "value": {} }),
        ))
        .await;
    assert_eq!(dialog["task"]["type"], "continue");
    assert_eq!(
        dialog["task"]["value"]["card"]["content"]["body"][0]["id"],
        "common_name"
    );
    let filed = t
        .send(t.activity(
            "29:john",
            "invoke",
            json!({ "name": "task/submit", "value": { "data": {
                "common_name": "dialog.example.com", "validity_days": "90", "justification": "From the dialog"
            } } }),
        ))
        .await;
    let message = filed["task"]["value"].as_str().unwrap_or_default();
    assert!(message.contains("is submitted"), "{filed}");
    let rejected = t
        .send(t.activity(
            "29:john",
            "invoke",
            json!({ "name": "task/submit", "value": { "data": { "common_name": "not a name!" } } }),
        ))
        .await;
    assert!(
        rejected["task"]["value"]
            .as_str()
            .unwrap_or_default()
            .contains("not filed"),
        "{rejected}"
    );
}

#[tokio::test]
async fn a_requester_in_slack_and_an_approver_in_teams_see_one_story() {
    use crate::slack::{slack_app_with, text_of};

    // One service with both platforms configured, as an organisation would run it.
    let db = TestDb::new().await;
    let fake = teams_fake().await;
    let slack = slack_app_with(
        TestDb {
            pool: db.pool.clone(),
            name: db.name.clone(),
        },
        |config| fake.configure(config),
    )
    .await;
    let t = TeamsTest::over(fake, db, slack.app.clone(), slack.workers.clone(), None);
    let commands = service(&t.db);
    approver(&commands, "jane@example.com").await;
    Projector::new(t.db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    t.say("29:jane", "cert help").await;

    // John asks in Slack.
    let reply = slack
        .cert(
            "UJOHN",
            "request cn=both.example.com days=90 why=\"Shared\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    let to_slack = slack
        .workers
        .notifier("slack")
        .expect("Slack is configured");
    let to_teams = slack
        .workers
        .notifier("teams")
        .expect("Teams is configured");
    let deliver =
        || crate::helpers::deliver(&t.db.pool, &slack.workers.outbox, [to_slack, to_teams]);
    deliver().await;
    // Jane is asked on both platforms; she decides in Teams.
    assert!(
        slack
            .calls_to("chat.postMessage")
            .iter()
            .any(|m| m["channel"] == "D-UJANE" && text_of(m).contains(&number))
    );
    assert_eq!(t.calls_to("send conv-29:jane").len(), 1);
    let approved = t
        .click("29:jane", "approve", json!({ "subject": number }))
        .await;
    assert!(
        approved["value"].to_string().contains("Approved by"),
        "{approved}"
    );
    deliver().await;

    // Slack shows the same outcome: its copies lose their buttons, John is told there.
    let slack_updates = slack.calls_to("chat.update");
    assert!(
        !slack_updates.is_empty()
            && slack_updates
                .iter()
                .all(|u| text_of(u).contains("Approved by jane@example.com")),
        "{slack_updates:?}"
    );
    assert!(
        slack
            .calls_to("chat.postMessage")
            .iter()
            .any(|m| m["channel"] == "D-UJOHN" && text_of(m).contains("is approved")),
        "John is told in Slack"
    );
    assert_eq!(
        t.calls_to("update conv-29:jane").len(),
        1,
        "and Jane's Teams card too"
    );
    let status = text_of(&slack.cert("UJOHN", &format!("status {number}")).await);
    assert!(
        status.contains("jane@example.com") || status.contains("approved"),
        "{status}"
    );
}

#[tokio::test]
async fn help_answers_someone_teams_cannot_tell_us_about() {
    let t = teams_app().await;
    // The directory has no e-mail for this person.
    let help = t.say("29:stranger", "cert help").await;
    assert!(help.contains("/cert request"), "{help}");
    let list = t.say("29:stranger", "cert list").await;
    assert!(!list.contains("/cert request"), "{list}");
    assert_eq!(t.events().await, 0, "nothing was recorded for them");
}
