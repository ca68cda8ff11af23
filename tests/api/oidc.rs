//! Signing in to the dashboard through the organisation's identity provider (OpenID
//! Connect), over real HTTP against a real provider: `oidc-provider-mock` (authlib's
//! provider, as a test server; `.ci/run` installs it), with this service registered as its
//! client, so the provider checks the redirect URI and the client secret as Azure AD or
//! Okta would. The authorization code flow end to end, then what must fail: a code used
//! twice, a `state` that is not this browser's, a browser that did not start the sign-in,
//! a provider that does not vouch for the e-mail address, and a plain user.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::dashboard::{client, text_of};
use crate::fixtures::{granted, service};
use crate::helpers::{TestDb, serve, test_config, test_files};
use cert_assistant::domain::actor::Role;

/// The provider, stopped when dropped.
struct Provider {
    child: std::process::Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `oidc-provider-mock`, requiring its clients to register.
async fn provider() -> Provider {
    let port = free_port();
    let mut child = std::process::Command::new("python3")
        .args([
            "-m",
            "oidc_provider_mock",
            "--port",
            &port.to_string(),
            "--require-registration",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(
            "python3 runs oidc-provider-mock (pip install oidc-provider-mock; .ci/run installs it)",
        );
    let issuer = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        if reqwest::get(&discovery)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Provider { child, issuer };
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("oidc-provider-mock did not start");
}

/// The `name=value` of the cookie `name` an answer sets.
fn set_cookie(answer: &reqwest::Response, name: &str) -> Option<String> {
    answer
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn value(cookie: &str) -> String {
    cookie.split(';').next().expect("name=value").to_owned()
}

/// The service, registered with the provider as its client.
struct Signing {
    base: String,
    provider: Provider,
    _db: TestDb,
    _files: tempfile::TempDir,
}

async fn signing() -> Signing {
    let provider = provider().await;
    let db = TestDb::new().await;
    let files = test_files();
    let mut config = test_config(files.path());
    let listen = format!("127.0.0.1:{}", free_port());
    let callback = format!("http://{listen}/dashboard/oidc/callback");
    config.http.listen = listen;
    let registered: serde_json::Value = client()
        .post(format!("{}/oauth2/clients", provider.issuer))
        .json(&serde_json::json!({ "redirect_uris": [callback] }))
        .send()
        .await
        .expect("registered")
        .json()
        .await
        .expect("the client's id and secret");
    config.auth.oidc_issuer_url = Some(provider.issuer.clone());
    config.auth.oidc_client_id = registered["client_id"].as_str().map(str::to_owned);
    config.auth.oidc_client_secret = registered["client_secret"]
        .as_str()
        .map(|secret| secret.to_owned().into());
    config.auth.oidc_name = Some("Example SSO".to_owned());
    config.validate().expect("a valid configuration");
    let (base, _) = serve(&db.pool, &config).await;
    let commands = service(&db);
    granted(&commands, "audrey@example.com", Role::Auditor).await;
    Signing {
        base,
        provider,
        _db: db,
        _files: files,
    }
}

/// One trip through the provider as `sub`: the sign-in cookie our service set, and the
/// callback URL the provider sent the browser back to.
async fn through_provider(s: &Signing, sub: &str) -> (String, String) {
    let started = client()
        .get(format!("{}/dashboard/oidc/login", s.base))
        .send()
        .await
        .expect("started");
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&started, "cert_dashboard_oidc").expect("the sign-in cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/dashboard/oidc",
        "Max-Age=600",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let authorize = started.headers()[LOCATION]
        .to_str()
        .expect("url")
        .to_owned();
    assert!(
        authorize.starts_with(&format!("{}/oauth2/authorize?", s.provider.issuer)),
        "{authorize}"
    );
    for part in [
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "scope=openid+email+profile",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    // The person signs in at the provider (its form: who they are).
    let back = client()
        .post(&authorize)
        .form(&[("sub", sub)])
        .send()
        .await
        .expect("authorized");
    assert!(back.status().is_redirection(), "{}", back.status());
    let callback = back.headers()[LOCATION].to_str().expect("url").to_owned();
    assert!(
        callback.starts_with(&format!("{}/dashboard/oidc/callback?", s.base)),
        "{callback}"
    );
    (value(&cookie), callback)
}

async fn get(url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client().get(url);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("an answer")
}

#[tokio::test]
async fn an_auditor_signs_in_through_the_identity_provider_and_nothing_else_gets_in() {
    let s = signing().await;

    // Not signed in, the page offers the provider.
    let page = get(&format!("{}/dashboard", s.base), None).await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    let page = page.text().await.expect("html");
    assert!(
        page.contains(r#"href="/dashboard/oidc/login">Sign in with Example SSO"#),
        "{page}"
    );

    // The whole flow: to the provider, back with a code, signed in as whom it vouches for.
    let (started, callback) = through_provider(&s, "audrey@example.com").await;
    let signed_in = get(&callback, Some(&started)).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let session = set_cookie(&signed_in, "cert_dashboard").expect("a session");
    assert!(session.contains("SameSite=Strict") && session.contains("HttpOnly"));
    let cleared = set_cookie(&signed_in, "cert_dashboard_oidc").expect("cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let landing = signed_in.text().await.expect("html");
    assert!(
        landing.contains("signed in as audrey@example.com"),
        "{landing}"
    );
    let overview = get(&format!("{}/dashboard", s.base), Some(&value(&session))).await;
    assert_eq!(overview.status(), StatusCode::OK);
    assert!(
        overview
            .text()
            .await
            .expect("html")
            .contains("audrey@example.com")
    );

    // The same code again: the provider refuses it, and so does the service.
    let again = get(&callback, Some(&started)).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(get_text(again).await.contains("not accepted"));

    // A callback this browser did not start: no sign-in cookie, or another's state.
    let (_, callback) = through_provider(&s, "audrey@example.com").await;
    let stranger = get(&callback, None).await;
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
    assert!(get_text(stranger).await.contains("not started here"));
    let (mine, _) = through_provider(&s, "audrey@example.com").await;
    let crossed = get(&callback, Some(&mine)).await;
    assert_eq!(crossed.status(), StatusCode::UNAUTHORIZED);
    let forged = get(&callback, Some("cert_dashboard_oidc=forged.value")).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // The provider says the address is not verified: nobody is signed in as it.
    let claims = serde_json::json!({ "email": "audrey@example.com", "email_verified": false });
    let put = client()
        .put(format!("{}/users/mallory", s.provider.issuer))
        .json(&claims)
        .send()
        .await
        .expect("claims set");
    assert!(put.status().is_success(), "{}", put.status());
    let (started, callback) = through_provider(&s, "mallory").await;
    let unverified = get(&callback, Some(&started)).await;
    assert_eq!(unverified.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&unverified, "cert_dashboard").is_none());
    assert!(
        get_text(unverified)
            .await
            .contains("does not say your e-mail address")
    );

    // A plain user is who the provider says, and still not let in.
    let (started, callback) = through_provider(&s, "john@example.com").await;
    let user = get(&callback, Some(&started)).await;
    assert_eq!(user.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&user, "cert_dashboard").is_none());
    assert!(
        get_text(user)
            .await
            .contains("approvers, admins and auditors")
    );

    // The provider turning someone away comes back as an error, not a code.
    let denied = get(
        &format!(
            "{}/dashboard/oidc/callback?error=access_denied&state=x",
            s.base
        ),
        Some(&started),
    )
    .await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
}

async fn get_text(answer: reqwest::Response) -> String {
    answer.text().await.expect("text")
}

#[tokio::test]
async fn in_a_real_browser_the_sign_in_page_leads_through_the_provider_to_the_overview() {
    use fantoccini::Locator;
    let Some(program) = crate::dashboard::chromedriver() else {
        eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    let s = signing().await;
    let (_driver, browser) = crate::dashboard::browser(&program).await;
    let shots = crate::dashboard::screenshot_dir();

    browser
        .goto(&format!("{}/dashboard", s.base))
        .await
        .expect("the dashboard");
    browser
        .find(Locator::Id("go-on"))
        .await
        .expect("the provider's link")
        .click()
        .await
        .expect("to the provider");
    let sub = browser
        .wait()
        .for_element(Locator::Css("input[name=sub]"))
        .await
        .expect("the provider's form");
    sub.send_keys("audrey@example.com").await.expect("typed");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(shots.join("oidc-provider.png"), png).expect("write screenshot");
    browser
        .find(Locator::XPath("//button[normalize-space()='Authorize']"))
        .await
        .expect("the Authorize button")
        .click()
        .await
        .expect("authorized");
    crate::dashboard::arrived_at(&browser, "/dashboard").await;
    let header = text_of(&browser, Locator::Css("header"), "the header").await;
    assert!(header.contains("audrey@example.com"), "{header}");
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(shots.join("oidc-signed-in.png"), png).expect("write screenshot");
    browser.close().await.expect("closed");
}
