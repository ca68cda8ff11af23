//! Entry points for coverage-guided fuzzing (`fuzz/`, `cargo fuzz`) of everything that reads
//! what people and peers send: the one-line command, CSRs, the certsrv pages, and the Slack,
//! Discord and Teams payloads as the handlers read them. Each takes arbitrary bytes and must
//! return — a panic is the bug a fuzzer reports. Not part of the service's API.
//!
//! The same parsers also meet seeded random and mutated inputs in every `cargo test`
//! ([`inputs`]).

#[cfg(test)]
pub(crate) mod inputs;

#[cfg(test)]
pub(crate) use inputs::Inputs;

use std::sync::LazyLock;

use serde_json::Value;

use crate::chat::{command, discord, reply, slack, teams};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `/cert …` as typed in any chat.
pub fn command_line(data: &[u8]) {
    if let Some(line) = text(data)
        && let Err(usage) = command::parse(line)
    {
        assert!(!usage.message.is_empty(), "a usage error says something");
    }
}

/// A CSR pasted or uploaded by a person.
pub fn csr(data: &[u8]) {
    if let Some(pem) = text(data)
        && let Err(error) = crate::pki::csr::parse(pem)
    {
        assert!(!error.to_string().is_empty(), "a CSR error says something");
    }
}

/// A page the ADCS web enrollment pages (certsrv) answered with.
pub fn certsrv_page(data: &[u8]) {
    let page = String::from_utf8_lossy(data);
    let _ = crate::adapters::ca::adcs::classify_submission(&page);
    let _ = crate::adapters::ca::adcs::disposition(&page);
}

/// A Slack delivery to `/slack/commands` or `/slack/interactivity`: the signature check over
/// it (which must refuse, the fuzzer cannot sign), then the form and the payload as the
/// handlers read them.
pub fn slack_request(data: &[u8]) {
    static VERIFIER: LazyLock<slack::verify::Verifier> =
        LazyLock::new(|| slack::verify::Verifier::new("fuzzing-signing-secret"));
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let body = String::from_utf8_lossy(data);
    let signature = body.split('&').next().unwrap_or_default();
    assert!(
        VERIFIER.verify(signature, &timestamp, &body).is_err(),
        "an unsigned body passed the signature check"
    );
    if let Ok(event) =
        serde_urlencoded::from_bytes::<slack_morphism::events::SlackCommandEvent>(data)
    {
        command_line(event.text.unwrap_or_default().as_bytes());
    }
    let Ok(form) = serde_urlencoded::from_bytes::<slack::InteractionForm>(data) else {
        return;
    };
    slack_interaction(form.payload.as_bytes());
}

/// The JSON payload of a Slack button click or modal submission.
pub fn slack_interaction(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let action = &payload["actions"][0];
    let action_id = action["action_id"].as_str().unwrap_or_default();
    let value = action["value"].as_str().unwrap_or_default();
    if let Some(action) = reply::Action::from_parts(action_id, value) {
        let _ = action.command();
    }
    let _ = reply::Decision::from_action_id(action_id);
    let view = &payload["view"];
    let metadata = view["private_metadata"].as_str().unwrap_or_default();
    let _ = serde_json::from_str::<slack::ModalOrigin>(metadata);
    let values = &view["state"]["values"];
    if let Ok(answers) = slack::forms::answers(values) {
        let _ = slack::forms::request_form(values, answers);
    }
}

/// A Discord interaction: the Ed25519 check (which must refuse), then the body as the handler
/// reads it.
pub fn discord_interaction(data: &[u8]) {
    static VERIFIER: LazyLock<discord::verify::Verifier> = LazyLock::new(|| {
        let key: crate::config::DiscordPublicKey =
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
                .parse()
                .expect("64 hex digits");
        discord::verify::Verifier::new(key.bytes()).expect("a valid Ed25519 public key")
    });
    assert!(
        !VERIFIER.verify(&"0".repeat(128), "1700000000", data),
        "an unsigned body passed the signature check"
    );
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = discord::who(&body);
    let (name, options) = discord::options::subcommand(&body);
    let _ = discord::options::command(name, &options);
    let _ = discord::options::focused(&body);
    let custom_id = body["data"]["custom_id"].as_str().unwrap_or_default();
    let selected = discord::questionnaire::selected(&body);
    let _ = discord::questionnaire::answered(custom_id, &selected, |answers| {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap_or_default();
        (
            crate::domain::recommendation::recommend(answers, today),
            None,
        )
    });
    let _ = discord::questionnaire::details_modal(custom_id);
    let _ = discord::questionnaire::request_form(
        custom_id,
        |id| discord::modal_value(&body, id).map(str::to_owned),
        |_| crate::domain::values::CaType::Internal,
    );
    let _ = crate::chat::short_form::request_form(|id| {
        discord::modal_value(&body, id).map(str::to_owned)
    });
    for id in ["reason", "to"] {
        let _ = discord::modal_value(&body, id);
    }
    let _ = reply::Decision::from_action_id(custom_id);
}

/// A Teams activity with its `Authorization` header in the first line: the token's header
/// (which must name an RS256 key to get further), then the activity as the handler reads it.
pub fn teams_activity(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (authorization, body) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = teams::auth::bearer_token(Some(authorization));
    let Ok(activity) = serde_json::from_str::<Value>(body) else {
        return;
    };
    let _ = teams::tenant(&activity);
    let said = teams::command_text(activity["text"].as_str().unwrap_or_default());
    command_line(said.as_bytes());
    let action = &activity["value"]["action"];
    let verb = action["verb"].as_str().unwrap_or_default();
    let subject = action["data"]["subject"].as_str().unwrap_or_default();
    if let Some(action) = reply::Action::from_parts(verb, subject) {
        let _ = action.command();
    }
    let _ = reply::Decision::from_action_id(verb);
}

/// The Bot Framework's signing keys (a JWKS document), as fetched from its metadata.
pub fn teams_signing_keys(data: &[u8]) {
    let _ = teams::auth::signing_keys(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    type Target = fn(&[u8]);

    /// Every entry point on the seeded inputs and the samples a fuzzer starts from.
    #[test]
    fn entry_points_return_on_arbitrary_and_sample_inputs() {
        let mut inputs = Inputs::new(0x5eed_0006);
        let samples: [(&str, Target); 6] = [
            (
                "command=%2Fcert&text=status+REQ-20261127-00001",
                slack_request,
            ),
            (
                r#"{"type":"block_actions","actions":[{"action_id":"approve","value":"REQ-20261127-00001"}]}"#,
                slack_interaction,
            ),
            (
                r#"{"type":2,"member":{"user":{"id":"1","username":"jane"}},"data":{"options":[{"name":"status","options":[{"name":"text","value":"REQ-20261127-00001"}]}]}}"#,
                discord_interaction,
            ),
            (
                "Bearer abc.def.ghi\n{\"type\":\"message\",\"text\":\"<at>cert</at> status\"}",
                teams_activity,
            ),
            (
                r#"{"keys":[{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB","endorsements":["msteams"]}]}"#,
                teams_signing_keys,
            ),
            ("request cn=app.example.com why=\"a b\"", command_line),
        ];
        // Discord's Ed25519 check is slow in debug builds; the fuzzer runs them optimized.
        for _ in 0..50 {
            for (sample, target) in samples {
                target(sample.as_bytes());
                target(inputs.mutate(sample).as_bytes());
                target(inputs.text(12).as_bytes());
            }
        }
    }
}
