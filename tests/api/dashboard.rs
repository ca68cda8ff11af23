//! The auditors' dashboard over real HTTP from the service `serve` builds: a one-time sign-in
//! link from `/cert dashboard`, the session cookie it sets, the overview, the filtered and
//! exported request list, a request's story with time travel, who may see it, and the audit
//! trail of who looked; then the same in a real headless browser (Debian's chromium, driven
//! over WebDriver), with screenshots.

use cert_assistant::commands::Commands;
use cert_assistant::domain::actor::Role;
use cert_assistant::domain::values::Email;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};

use crate::fixtures::{approver, ctx, granted, service, web_request};
use crate::helpers::{TestDb, project, serve, test_config, test_files};

/// A store with three requests (one approved, one rejected, one waiting) and an auditor.
struct Store {
    db: TestDb,
    base: String,
    commands: Commands,
    waiting: String,
    approved: String,
    /// Just before the approved request was approved.
    before_approval: chrono::DateTime<chrono::Utc>,
    /// The service's own workers, stepped by the test.
    workers: cert_assistant::app::Workers,
    _files: tempfile::TempDir,
}

async fn store() -> Store {
    let db = TestDb::new().await;
    let files = test_files();
    let (base, workers) = serve(&db.pool, &test_config(files.path())).await;
    let commands = service(&db);
    let jane = approver(&commands, "jane@example.com").await;
    granted(&commands, "audrey@example.com", Role::Auditor).await;
    let john = ctx("john@example.com");
    let mut numbers = Vec::new();
    for cn in [
        "approved.example.com",
        "rejected.example.com",
        "waiting.example.com",
    ] {
        let submitted = commands
            .submit_request(&john, web_request(cn))
            .await
            .expect("submitted");
        numbers.push(submitted.request_number);
    }
    // A second apart, so the time-travel control (which has seconds) falls between them.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before_approval = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    commands
        .approve(&jane, &numbers[0], None)
        .await
        .expect("approved");
    commands
        .reject(&jane, &numbers[1], "wrong host")
        .await
        .expect("rejected");
    project(&db.pool).await;
    Store {
        db,
        base,
        commands,
        approved: numbers[0].to_string(),
        waiting: numbers[2].to_string(),
        before_approval,
        workers,
        _files: files,
    }
}

/// The session cookie a sign-in's answer sets (its whole `Set-Cookie` line).
fn session_cookie(answer: &reqwest::Response) -> String {
    answer
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with("cert_dashboard="))
        .expect("a session cookie")
        .to_owned()
}

/// A client that follows no redirects, so the sign-in's answer can be read.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl Store {
    async fn link(&self, email: &str) -> String {
        let token = self
            .commands
            .dashboard_link(&ctx(email))
            .await
            .expect("a sign-in link");
        format!("{}/dashboard/sign-in/{token}", self.base)
    }

    /// Signs in as `email`: the session cookie (`name=value`).
    async fn session(&self, email: &str) -> String {
        let answer = client()
            .get(self.link(email).await)
            .send()
            .await
            .expect("sign in");
        assert_eq!(answer.status(), StatusCode::OK);
        session_cookie(&answer)
            .split(';')
            .next()
            .expect("name=value")
            .to_owned()
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = client().get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.expect("the dashboard answers")
    }

    async fn page(&self, path: &str, cookie: &str) -> String {
        let answer = self.get(path, Some(cookie)).await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        answer.text().await.expect("html")
    }
}

#[tokio::test]
async fn an_auditor_signs_in_once_by_link_and_reads_every_page_and_each_view_is_audited() {
    let s = store().await;

    // The link works once, sets a strict session cookie, and goes on to the overview from a
    // page of its own (a strict cookie is not sent on a redirect from the chat's site).
    let link = s.link("audrey@example.com").await;
    let first = client().get(&link).send().await.expect("sign in");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["referrer-policy"], "no-referrer");
    let set = session_cookie(&first);
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "served over plain HTTP here: {set}"
    );
    let landing = first.text().await.expect("html");
    assert!(
        landing.contains(r#"http-equiv="refresh" content="0; url=/dashboard""#)
            && landing.contains("signed in as audrey@example.com"),
        "{landing}"
    );
    let again = client().get(&link).send().await.expect("again");
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(again.text().await.expect("text").contains("used already"));
    let cookie = set.split(';').next().expect("name=value").to_owned();

    // The overview: the chart, what waits (with its age), expiry buckets, the read side.
    let answer = s.get("/dashboard", Some(&cookie)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert!(
        answer.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors 'none'")
    );
    let overview = answer.text().await.expect("html");
    assert!(
        overview.contains("id=\"requests-chart\"") && overview.contains("<rect"),
        "{overview}"
    );
    assert!(
        overview.contains(&s.waiting)
            && !overview.contains(&format!(">{}</a></td><td>approved", s.approved))
    );
    assert!(
        overview.contains("within 7 days")
            && overview.contains("read_model")
            && overview.contains("Jobs given up")
    );
    assert!(overview.contains("audrey@example.com · read-only"));

    // The list, filtered; exports carry the same rows.
    let waiting = s
        .page("/dashboard/requests?status=pending_approval", &cookie)
        .await;
    assert!(
        waiting.contains(&s.waiting) && !waiting.contains(&s.approved),
        "{waiting}"
    );
    assert!(waiting.contains("1 request(s)"), "{waiting}");
    let by_name = s
        .page("/dashboard/requests?q=REJECTED.example", &cookie)
        .await;
    assert!(by_name.contains("rejected.example.com") && !by_name.contains("waiting.example.com"));
    let csv = s
        .page("/dashboard/requests.csv?status=pending_approval", &cookie)
        .await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "request_number,common_name,status,requester,certificate_type,recommended_ca,recommendation_overridden,created_utc"
        )
    );
    assert!(lines.next().is_some_and(|row| row.starts_with(&format!(
        "{},waiting.example.com,pending_approval,john@example.com",
        s.waiting
    ))));
    assert_eq!(lines.next(), None);
    let json: serde_json::Value =
        serde_json::from_str(&s.page("/dashboard/requests.json", &cookie).await).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(3));

    // A request's story, and time travel to before its approval.
    let now = s
        .page(&format!("/dashboard/requests/{}", s.approved), &cookie)
        .await;
    assert!(
        now.contains("id=\"status\">approved") || now.contains("id=\"status\">in progress"),
        "{now}"
    );
    assert!(now.contains("Request created") && now.contains("Approval policy satisfied"));
    assert!(now.contains("jane@example.com: approved"), "{now}");
    assert!(now.contains("approved.example.com"), "what it asks for");
    let at = s.before_approval.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let then = s
        .page(
            &format!("/dashboard/requests/{}?as_of={at}", s.approved),
            &cookie,
        )
        .await;
    assert!(then.contains("id=\"status\">pending approval"), "{then}");
    assert!(then.contains("jane@example.com: waiting"), "{then}");
    assert!(
        then.contains("Approval policy satisfied (since then)"),
        "{then}"
    );
    let bad = s
        .get(
            &format!("/dashboard/requests/{}?as_of=yesterday", s.approved),
            Some(&cookie),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let missing = s
        .get("/dashboard/requests/REQ-20200101-00001", Some(&cookie))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The auditor's sign-in and every page she viewed are in the audit trail.
    project(&s.db.pool).await;
    let viewed: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT a.event_type, a.resource_identifier FROM audit_logs a JOIN users u ON u.id = a.user_id \
          WHERE u.email = 'audrey@example.com' AND a.resource_type = 'dashboard' ORDER BY a.timestamp, a.id",
    )
    .fetch_all(&s.db.pool)
    .await
    .expect("audit rows");
    assert_eq!(
        viewed[0],
        ("dashboard_signed_in".to_owned(), Some("sign-in".to_owned()))
    );
    assert!(
        viewed
            .iter()
            .any(|(_, page)| page.as_deref()
                == Some("/dashboard/requests.csv?status=pending_approval")),
        "{viewed:?}"
    );
    assert!(
        viewed
            .iter()
            .any(|(_, page)| page.as_deref().is_some_and(|p| p.contains("as_of="))),
        "{viewed:?}"
    );
}

#[tokio::test]
async fn nobody_else_gets_in_and_a_role_taken_away_takes_the_dashboard_with_it() {
    let s = store().await;
    // A requester gets no link, and the refusal is audited.
    let refused = s.commands.dashboard_link(&ctx("john@example.com")).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("approvers, admins and auditors")));
    // No cookie, a forged one, a download link passed off as a sign-in link.
    assert_eq!(
        s.get("/dashboard", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get(
            "/dashboard",
            Some("cert_dashboard=eyJ1IjoiYXVkcmV5In0.AAAA")
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = s.get("/dashboard/sign-in/not-a-token", None).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // A sign-in link is not a session.
    let token = s.link("audrey@example.com").await;
    let token = token.rsplit('/').next().expect("token");
    assert_eq!(
        s.get("/dashboard", Some(&format!("cert_dashboard={token}")))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // An approver reads; once only a user, the same session is refused.
    let cookie = s.session("jane@example.com").await;
    assert_eq!(
        s.get("/dashboard", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    s.commands
        .grant_role(
            &ctx("root@example.com"),
            &Email::parse("jane@example.com").expect("email"),
            Role::User,
        )
        .await
        .expect("demoted");
    // The service learns of the change as every replica does (its directory follows it).
    project(&s.db.pool).await;
    crate::helpers::eventually(
        "the session is refused",
        std::time::Duration::from_secs(10),
        || async { s.get("/dashboard", Some(&cookie)).await.status() == StatusCode::FORBIDDEN },
    )
    .await;
    // Nothing here changes anything: every route answers GET only.
    let post = client()
        .post(format!("{}/dashboard/requests", s.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// chromedriver, where it is installed: `CHROMEDRIVER` (which CI sets, so there it must
/// work), else `/usr/bin/chromedriver`; `None`: the browser test has nothing to drive.
pub(crate) fn chromedriver() -> Option<String> {
    if let Ok(required) = std::env::var("CHROMEDRIVER") {
        return Some(required);
    }
    std::path::Path::new("/usr/bin/chromedriver")
        .exists()
        .then(|| "/usr/bin/chromedriver".to_owned())
}

/// A chromedriver on a free port, stopped when dropped.
pub(crate) struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver(program: &str) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(program)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(
            "chromedriver runs (apt-get install chromium chromium-driver; .ci/run installs them)",
        );
    let url = format!("http://127.0.0.1:{port}");
    // Dropped (killed and waited for) on every path from here, a panic included.
    let driver = Driver { child, url };
    for _ in 0..250 {
        if reqwest::get(format!("{}/status", driver.url)).await.is_ok() {
            return driver;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("chromedriver did not start");
}

/// Waits until the browser's address contains `part` (a click's page has loaded).
async fn arrived(browser: &fantoccini::Client, part: &str) {
    for _ in 0..250 {
        let url = browser.current_url().await.expect("url");
        let ready = browser
            .execute("return document.readyState;", Vec::new())
            .await
            .expect("state");
        if url.as_str().contains(part) && ready == "complete" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the browser did not arrive at {part}");
}

/// Waits until the browser shows the page at exactly `path`.
pub(crate) async fn arrived_at(browser: &fantoccini::Client, path: &str) {
    for _ in 0..250 {
        let url = browser.current_url().await.expect("url");
        let ready = browser
            .execute("return document.readyState;", Vec::new())
            .await
            .expect("state");
        if url.path() == path && ready == "complete" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the browser did not arrive at {path}");
}

/// A headless chromium driven through `program` (chromedriver); the driver stops when its
/// half is dropped.
pub(crate) async fn browser(program: &str) -> (Driver, fantoccini::Client) {
    let driver = driver(program).await;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    let browser =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a browser session");
    (driver, browser)
}

/// The text of the first element `locator` finds on the browser's page (`what` it is).
pub(crate) async fn text_of(
    browser: &fantoccini::Client,
    locator: fantoccini::Locator<'_>,
    what: &str,
) -> String {
    browser
        .find(locator)
        .await
        .expect(what)
        .text()
        .await
        .expect("text")
}

/// Where the screenshots go (to look at after the run).
pub(crate) fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[tokio::test]
async fn in_a_real_browser_an_auditor_signs_in_filters_travels_in_time_and_exports() {
    use fantoccini::Locator;
    let Some(program) = chromedriver() else {
        eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    let s = store().await;
    let (_driver, browser) = browser(&program).await;
    let shots = screenshot_dir();
    let shoot = |name: &'static str| {
        let browser = browser.clone();
        let path = shots.join(format!("{name}.png"));
        async move {
            let png = browser.screenshot().await.expect("screenshot");
            std::fs::write(&path, png).expect("write screenshot");
        }
    };

    // The chat-issued link signs in and lands on the overview, with its chart.
    let link = s.link("audrey@example.com").await;
    browser.goto(&link).await.expect("sign in");
    arrived_at(&browser, "/dashboard").await;
    let chart = browser
        .find(Locator::Id("requests-chart"))
        .await
        .expect("the chart");
    assert!(
        !chart
            .find_all(Locator::Css("rect"))
            .await
            .expect("bars")
            .is_empty()
    );
    let pending = text_of(&browser, Locator::Id("pending"), "pending").await;
    assert!(pending.contains(&s.waiting), "{pending}");
    shoot("overview").await;

    // Filter the list by status.
    browser
        .find(Locator::LinkText("Requests"))
        .await
        .expect("menu")
        .click()
        .await
        .expect("to the list");
    arrived(&browser, "/dashboard/requests").await;
    browser
        .find(Locator::Css("select[name=status]"))
        .await
        .expect("status filter")
        .select_by_value("pending_approval")
        .await
        .expect("chosen");
    browser
        .find(Locator::Css("form.filters button"))
        .await
        .expect("filter")
        .click()
        .await
        .expect("filtered");
    arrived(&browser, "status=pending_approval").await;
    let listed = text_of(&browser, Locator::Id("requests"), "table").await;
    assert!(
        listed.contains(&s.waiting) && !listed.contains(&s.approved),
        "{listed}"
    );
    shoot("requests-filtered").await;

    // Open a request, then move the time-travel control to before its approval.
    browser
        .goto(&format!("{}/dashboard/requests/{}", s.base, s.approved))
        .await
        .expect("request");
    let now = text_of(&browser, Locator::Id("status"), "status").await;
    assert!(now == "approved" || now == "in progress", "{now}");
    let control = browser
        .find(Locator::Css("input[name=as_of]"))
        .await
        .expect("the control");
    let before = s.before_approval.format("%Y-%m-%dT%H:%M:%S").to_string();
    browser
        .execute(
            "arguments[0].value = arguments[1];",
            vec![
                serde_json::to_value(&control).expect("element"),
                before.into(),
            ],
        )
        .await
        .expect("moved");
    browser
        .find(Locator::Css("#time-travel button"))
        .await
        .expect("show")
        .click()
        .await
        .expect("travelled");
    arrived(&browser, "as_of=").await;
    let then = text_of(&browser, Locator::Id("status"), "status").await;
    assert_eq!(then, "pending approval");
    let story = text_of(&browser, Locator::Id("story"), "story").await;
    assert!(story.contains("(since then)"), "{story}");
    shoot("request-as-of").await;

    // Export the list as CSV with the browser's own session.
    browser
        .goto(&format!("{}/dashboard/requests", s.base))
        .await
        .expect("list");
    let href = browser
        .find(Locator::Id("export-csv"))
        .await
        .expect("the CSV link")
        .attr("href")
        .await
        .expect("href")
        .expect("an href");
    let cookie = browser
        .get_all_cookies()
        .await
        .expect("cookies")
        .into_iter()
        .find(|c| c.name() == "cert_dashboard")
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    let csv = s
        .page(&href, &format!("cert_dashboard={}", cookie.value()))
        .await;
    assert_eq!(csv.lines().count(), 4, "a header and three requests: {csv}");

    // The audit trail, filtered to approvals: every row vouched for by the hash chain.
    browser
        .goto(&format!("{}/dashboard/audit?category=approval", s.base))
        .await
        .expect("the audit trail");
    let trail = text_of(&browser, Locator::Id("audit"), "the trail").await;
    assert!(
        trail.contains("approval_granted") && trail.contains("vouched for"),
        "{trail}"
    );
    shoot("audit-trail").await;

    // The same link again, and a page without a session, are refused in the browser too.
    browser.delete_all_cookies().await.expect("signed out");
    browser.goto(&link).await.expect("again");
    let refused = text_of(&browser, Locator::Css("body"), "body").await;
    assert!(refused.contains("used already"), "{refused}");
    browser
        .goto(&format!("{}/dashboard", s.base))
        .await
        .expect("overview");
    let refused = text_of(&browser, Locator::Css("body"), "body").await;
    assert!(refused.contains("/cert dashboard"), "{refused}");
    browser.close().await.expect("closed");
}

/// Runs the binary against the store: whether it succeeded, its output and its errors.
fn cli(s: &Store, args: &[&str]) -> (bool, String, String) {
    let output = crate::helpers::binary()
        .args(args)
        .env("DATABASE_URL", s.db.url())
        .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", crate::fixtures::KEK)
        .env("CERT_ASSISTANT_AUTH__ADMINS", "root@example.com")
        .output()
        .expect("run");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `path` with `?name=value`, the value encoded.
fn with_query(path: &str, name: &str, value: &str) -> String {
    format!(
        "{path}?{}",
        serde_urlencoded::to_string([(name, value)]).expect("query")
    )
}

#[tokio::test]
async fn audit_as_of_prints_a_request_as_it_was_and_what_happened_since() {
    let s = store().await;
    let run = |args: &[&str]| cli(&s, args);
    let at = s.before_approval.to_rfc3339();
    let (ok, out, err) = run(&["audit", "as-of", &at, &s.approved]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{} as it was at", s.approved))
            && out.contains("Status: pending approval"),
        "{out}"
    );
    assert!(out.contains("Approver: jane@example.com: waiting"), "{out}");
    assert!(
        out.contains("since then:")
            && out.contains("Approval ApprovalPolicySatisfied by jane@example.com"),
        "{out}"
    );
    // Without chat, the command line hands out the sign-in link.
    let (ok, out, err) = run(&["dashboard", "--as", "audrey@example.com"]);
    assert!(ok, "{err}");
    let token = out
        .lines()
        .find_map(|line| line.split("/dashboard/sign-in/").nth(1))
        .expect("a sign-in link");
    let signed_in = client()
        .get(format!("{}/dashboard/sign-in/{token}", s.base))
        .send()
        .await
        .expect("signed in");
    assert_eq!(signed_in.status(), StatusCode::OK);
    let (ok, _, err) = run(&["dashboard", "--as", "john@example.com"]);
    assert!(
        !ok && err.contains("approvers, admins and auditors"),
        "{err}"
    );
    let (ok, _, err) = run(&["audit", "as-of", "last tuesday", &s.approved]);
    assert!(!ok && err.contains("2026-03-01T09:30"), "{err}");
    let long_ago = "2000-01-01T00:00";
    let (ok, _, err) = run(&["audit", "as-of", long_ago, &s.approved]);
    assert!(!ok && err.contains("did not exist yet"), "{err}");
}

#[tokio::test]
async fn auditors_ask_the_same_in_chat_and_nobody_else_may() {
    use cert_assistant::chat::command::parse;
    use cert_assistant::chat::service::ChatService;
    let s = store().await;
    let chat = ChatService::new(s.commands.clone());
    let at = s
        .before_approval
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let asked = parse(&format!("audit as-of {at} {}", s.approved)).expect("parsed");
    let reply = chat
        .handle(&ctx("audrey@example.com"), asked.clone())
        .await
        .plain_text();
    assert!(reply.contains("Status: pending approval"), "{reply}");
    assert!(
        reply.contains("Approver: jane@example.com: waiting"),
        "{reply}"
    );
    assert!(
        reply.contains("Since then:")
            && reply.contains("ApprovalPolicySatisfied by jane@example.com"),
        "{reply}"
    );
    let refused = chat
        .handle(&ctx("john@example.com"), asked)
        .await
        .plain_text();
    assert!(refused.contains("auditor"), "{refused}");
    assert!(
        parse("audit as-of yesterday").is_err(),
        "a time and a request are needed"
    );
}

#[tokio::test]
async fn certificates_expiring_this_quarter_are_listed_exported_and_their_audit_rows_vouched_for() {
    let s = store().await;
    // The approved request is issued (90 days) by the service's saga.
    crate::saga::feed(&s.db).await;
    s.workers.issuance.step().await.expect("issued");
    project(&s.db.pool).await;
    let serial: String = sqlx::query_scalar("SELECT serial_number FROM certificates")
        .fetch_one(&s.db.pool)
        .await
        .expect("a certificate");
    let cookie = s.session("audrey@example.com").await;

    let quarter = s.page("/dashboard/certificates?expiring=90", &cookie).await;
    assert!(
        quarter.contains(&serial) && quarter.contains("approved.example.com"),
        "{quarter}"
    );
    assert!(quarter.contains("1 certificate(s)"), "{quarter}");
    let month = s.page("/dashboard/certificates?expiring=30", &cookie).await;
    assert!(
        month.contains("0 certificate(s)") && month.contains("None match."),
        "{month}"
    );
    let csv = s
        .page("/dashboard/certificates.csv?expiring=90", &cookie)
        .await;
    assert!(csv.starts_with(
        "serial_number,common_name,status,owner,request_number,valid_from,valid_to,key_algorithm\n"
    ));
    assert!(
        csv.contains(&format!(
            "{serial},approved.example.com,active,john@example.com,{}",
            s.approved
        )),
        "{csv}"
    );

    // Its page: what it says, its request, and its audit rows, each vouched for.
    let page = s
        .page(&format!("/dashboard/certificates/{serial}"), &cookie)
        .await;
    assert!(page.contains("CN=approved.example.com") || page.contains("approved.example.com"));
    assert!(page.contains(&format!("/dashboard/requests/{}", s.approved)));
    assert!(
        page.contains("certificate issued") && page.contains("vouched for"),
        "{page}"
    );
    assert!(
        page.contains("matches its entry in the hash chain"),
        "{page}"
    );
    // A row changed behind the chain's back is shown as such.
    sqlx::query(
        "UPDATE audit_logs SET action = 'read' WHERE resource_id = \
           (SELECT id FROM certificates WHERE serial_number = $1)",
    )
    .bind(&serial)
    .execute(&s.db.pool)
    .await
    .expect("tamper");
    let page = s
        .page(&format!("/dashboard/certificates/{serial}"), &cookie)
        .await;
    assert!(
        page.contains("changed after it was written")
            && page.contains("do not match the hash chain"),
        "{page}"
    );
    let missing = s.get("/dashboard/certificates/00FF00", Some(&cookie)).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Its certificate and chain download from its page (an auditor may; an approver who is
    // not its owner may not), each download recorded.
    let pem = s
        .get(
            &format!("/dashboard/certificates/{serial}/certificate.pem"),
            Some(&cookie),
        )
        .await;
    assert_eq!(pem.status(), StatusCode::OK);
    assert!(
        pem.headers()["content-disposition"]
            .to_str()
            .expect("header")
            .starts_with("attachment"),
    );
    assert!(
        pem.text()
            .await
            .expect("pem")
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let chain = s
        .page(
            &format!("/dashboard/certificates/{serial}/chain.pem"),
            &cookie,
        )
        .await;
    assert!(chain.contains("-----BEGIN CERTIFICATE-----"), "{chain}");
    let key = s
        .get(
            &format!("/dashboard/certificates/{serial}/key.pem"),
            Some(&cookie),
        )
        .await;
    assert_eq!(key.status(), StatusCode::NOT_FOUND, "no private key here");
    let jane = s.session("jane@example.com").await;
    let refused = s
        .get(
            &format!("/dashboard/certificates/{serial}/certificate.pem"),
            Some(&jane),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before_revocation = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // Revoked, it is on the revocations list, by reason, with who revoked it.
    s.commands
        .revoke(
            &ctx("root@example.com"),
            cert_assistant::commands::RevocationForm {
                certificate: serial.clone(),
                reason: "key_compromise".to_owned(),
                text: Some("laptop lost".to_owned()),
            },
        )
        .await
        .expect("revoked");
    project(&s.db.pool).await;
    let revoked = s
        .page("/dashboard/revocations?reason=key_compromise", &cookie)
        .await;
    assert!(
        revoked.contains(&serial)
            && revoked.contains("root@example.com")
            && revoked.contains("1 revocation(s)"),
        "{revoked}"
    );
    let other = s
        .page("/dashboard/revocations?reason=superseded", &cookie)
        .await;
    assert!(other.contains("0 revocation(s)"), "{other}");
    let csv = s.page("/dashboard/revocations.csv", &cookie).await;
    assert!(csv.starts_with(
        "serial_number,common_name,reason_code,revoked_by,approved_by,revoked,in_crl\n"
    ));
    assert!(
        csv.contains(&format!(
            "{serial},approved.example.com,key_compromise,root@example.com"
        )),
        "{csv}"
    );

    // Time travel on its page: now revoked; just before, active, downloaded once (a chain is
    // not counted), and the
    // revocation is what happened since; before its approval, not issued, and its approver
    // still to decide.
    let path = format!("/dashboard/certificates/{serial}");
    let now = s.page(&path, &cookie).await;
    assert!(now.contains(r#"id="status">revoked"#), "{now}");
    assert!(now.contains("key_compromise") && now.contains("jane@example.com: approved"));
    let at = before_revocation
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let then = s.page(&with_query(&path, "as_of", &at), &cookie).await;
    assert!(then.contains(r#"id="status">active"#), "{then}");
    assert!(
        then.contains("<dt>Downloads</dt><dd>1</dd>")
            && then.contains("Certificate revoked (since then)")
            && !then.contains("Certificate issued (since then)"),
        "{then}"
    );
    let at = s
        .before_approval
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let earlier = s.page(&with_query(&path, "as_of", &at), &cookie).await;
    assert!(
        earlier.contains("Not issued yet at that time")
            && earlier.contains("jane@example.com: waiting")
            && earlier.contains("Certificate issued (since then)"),
        "{earlier}"
    );
    let bad = s
        .get(&with_query(&path, "as_of", "soon"), Some(&cookie))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // The same from the command line, by serial.
    let (ok, out, err) = cli(
        &s,
        &["audit", "as-of", &before_revocation.to_rfc3339(), &serial],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("certificate {serial} as it was at"))
            && out.contains("Status: active")
            && out.contains("Approver: jane@example.com: approved")
            && out.contains("Certificate CertificateRevoked by root@example.com"),
        "{out}"
    );
}

#[tokio::test]
async fn the_audit_trail_is_filtered_exported_and_vouched_for_and_only_auditors_and_admins_read_it()
{
    let s = store().await;
    let cookie = s.session("audrey@example.com").await;
    let all = s.page("/dashboard/audit", &cookie).await;
    assert!(
        all.contains("approval_granted")
            && all.contains("request_created")
            && all.contains("jane@example.com")
            && all.contains("vouched for"),
        "{all}"
    );

    // By category and who: jane's approvals only.
    let query = "category=approval&q=jane%40example.com";
    let janes = s.page(&format!("/dashboard/audit?{query}"), &cookie).await;
    assert!(
        janes.contains("approval_granted") && !janes.contains("request_created"),
        "{janes}"
    );
    let csv = s
        .page(&format!("/dashboard/audit.csv?{query}"), &cookie)
        .await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "at_utc,event_type,category,action,result,hash_chain,who,role,platform,\
             resource_type,resource_identifier,error_message"
        )
    );
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "{csv}");
    for row in &rows {
        assert!(
            row.contains(",approval,")
                && row.contains("jane@example.com")
                && row.contains(",success,vouched for,"),
            "{row}"
        );
    }
    let json: serde_json::Value = s
        .get(&format!("/dashboard/audit.json?{query}"), Some(&cookie))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(rows.len()), "{json}");
    assert_eq!(json[0]["category"], "approval", "{json}");

    // Who looked: the auditor's own views are rows too, once projected.
    project(&s.db.pool).await;
    let views = s.page("/dashboard/audit?category=access", &cookie).await;
    assert!(
        views.contains("dashboard_viewed") && views.contains("/dashboard/audit"),
        "{views}"
    );

    // A whole address is matched as one (through an index), whatever its case.
    let shouted = s
        .page(
            "/dashboard/audit.csv?category=approval&q=Jane%40EXAMPLE.com",
            &cookie,
        )
        .await;
    assert_eq!(shouted, csv, "the same rows");

    // By time: before the approval there was none; from far ahead, nothing.
    let until = s.before_approval.to_rfc3339();
    let before = s
        .page(&with_query("/dashboard/audit", "until", &until), &cookie)
        .await;
    assert!(
        before.contains("request_created") && !before.contains("approval_granted"),
        "{before}"
    );
    let ahead = s.page("/dashboard/audit?from=2999-01-01", &cookie).await;
    assert!(ahead.contains("0 audit row(s)"), "{ahead}");
    let bad = s.get("/dashboard/audit?from=someday", Some(&cookie)).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // A row changed behind the chain's back is shown as such.
    sqlx::query("UPDATE audit_logs SET result = 'partial' WHERE event_type = 'approval_granted'")
        .execute(&s.db.pool)
        .await
        .expect("tamper");
    let tampered = s.page("/dashboard/audit?result=partial", &cookie).await;
    assert!(
        tampered.contains("changed after it was written"),
        "{tampered}"
    );

    // Past the 10,000 rows a list counts, a full page still leads on.
    sqlx::query(
        "INSERT INTO audit_logs (event_type, event_category, action, result, \"timestamp\") \
         SELECT 'bulk_row', 'system', 'create', 'success', now() - i * interval '1 ms' \
           FROM generate_series(1, 10060) i",
    )
    .execute(&s.db.pool)
    .await
    .expect("bulk rows");
    let far = s
        .page("/dashboard/audit?q=bulk_row&page=201", &cookie)
        .await;
    assert!(
        far.contains("More than 10,000")
            && far.contains("10001–10050")
            && far.contains("next-page"),
        "{far}"
    );
    let last = s
        .page("/dashboard/audit?q=bulk_row&page=202", &cookie)
        .await;
    assert!(
        last.contains("10051–10060") && !last.contains("next-page"),
        "{last}"
    );

    // An approver sees the requests, not the audit trail; nobody unsigned sees anything.
    let jane = s.session("jane@example.com").await;
    for path in [
        "/dashboard/audit",
        "/dashboard/audit.csv",
        "/dashboard/audit.json?from=x",
    ] {
        assert_eq!(
            s.get(path, Some(&jane)).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            s.get(path, None).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
}

#[tokio::test]
async fn with_a_read_replica_the_pages_read_there_and_sign_ins_stay_on_the_primary() {
    // Two databases: the primary, and a stand-in for its replica holding a request the
    // primary does not (a replica that lagged, or a copy): what the pages show says where
    // they read.
    let primary = TestDb::new().await;
    let replica = TestDb::new().await;
    let on_replica = service(&replica)
        .submit_request(&ctx("john@example.com"), web_request("replica.example.com"))
        .await
        .expect("submitted on the replica");
    project(&replica.pool).await;
    let files = test_files();
    let mut config = test_config(files.path());
    config.database.read_url = Some(replica.url().into());
    let (base, workers) = serve(&primary.pool, &config).await;
    let commands = service(&primary);
    granted(&commands, "audrey@example.com", Role::Auditor).await;
    let s = Store {
        db: primary,
        base,
        commands,
        waiting: String::new(),
        approved: String::new(),
        before_approval: chrono::Utc::now(),
        workers,
        _files: files,
    };
    let cookie = s.session("audrey@example.com").await;
    let listed = s.page("/dashboard/requests", &cookie).await;
    assert!(
        listed.contains(on_replica.request_number.as_ref())
            && listed.contains("replica.example.com"),
        "{listed}"
    );
    let spent: i64 = sqlx::query_scalar("SELECT count(*) FROM dashboard_sign_ins")
        .fetch_one(&s.db.pool)
        .await
        .expect("sign-ins");
    assert_eq!(spent, 1, "the sign-in was spent on the primary");
}
