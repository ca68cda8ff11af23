//! The Teams app package manifest: the bot, its scopes and its command list (from the same
//! command table the parser uses).

use serde_json::{Value, json};

use crate::chat::command::COMMANDS;

/// A manifest (schema 1.16) for the bot `app_id` served at `host` (for `validDomains`).
pub fn manifest(app_id: &str, host: &str) -> Value {
    // Teams shows at most ten commands per scope.
    let commands: Vec<Value> = COMMANDS
        .iter()
        .take(10)
        .map(|spec| {
            json!({
                "title": format!("cert {}", spec.name).chars().take(32).collect::<String>(),
                "description": spec.summary.chars().take(128).collect::<String>(),
            })
        })
        .collect();
    json!({
        "$schema": "https://developer.microsoft.com/en-us/json-schemas/teams/v1.16/MicrosoftTeams.schema.json",
        "manifestVersion": "1.16",
        "version": env!("CARGO_PKG_VERSION"),
        "id": app_id,
        "developer": {
            "name": "cert-assistant",
            "websiteUrl": format!("https://{host}"),
            "privacyUrl": format!("https://{host}/privacy"),
            "termsOfUseUrl": format!("https://{host}/terms"),
        },
        "name": { "short": "cert-assistant", "full": "cert-assistant: certificates from chat" },
        "description": {
            "short": "Request, approve and manage certificates",
            "full": "Request certificates, approve them with a click, download, renew and revoke them; the right CA is recommended for you.",
        },
        "icons": { "color": "color.png", "outline": "outline.png" },
        "accentColor": "#2E5C8A",
        "bots": [{
            "botId": app_id,
            "scopes": ["personal", "team", "groupChat"],
            "supportsFiles": false,
            "isNotificationOnly": false,
            "commandLists": [
                { "scopes": ["personal"], "commands": commands.clone() },
                { "scopes": ["team", "groupChat"], "commands": commands },
            ],
        }],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [host],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_bot_and_fits_teams_limits() {
        let manifest = manifest("00000000-0000-0000-0000-000000000001", "certs.example.com");
        assert_eq!(
            manifest["bots"][0]["botId"],
            "00000000-0000-0000-0000-000000000001"
        );
        let commands = manifest["bots"][0]["commandLists"][0]["commands"]
            .as_array()
            .expect("commands");
        assert!(!commands.is_empty() && commands.len() <= 10);
        assert!(
            commands
                .iter()
                .all(|c| c["title"].as_str().is_some_and(|t| t.len() <= 32))
        );
        assert_eq!(manifest["validDomains"][0], "certs.example.com");
    }
}
