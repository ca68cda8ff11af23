//! `/cert` commands, parsed once for every platform from one command table. The table also
//! writes `/cert help`, so help and parser cannot disagree.

use std::collections::BTreeMap;

use crate::domain::actor::Role;

/// One subcommand: its name, how to call it, what it does, and who may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The word after `/cert`.
    pub name: &'static str,
    /// Arguments, as shown in help.
    pub usage: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The least role that may use it (`None`: everyone).
    pub role: Option<Role>,
}

/// Every subcommand, in help order.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "request",
        usage: "[cn=… san=… type=… key=… days=… why=\"…\" dept=… cost=… project=… notes=… ca=… override=\"…\"]",
        summary: "request a certificate (no arguments: open the form)",
        role: None,
    },
    CommandSpec {
        name: "recommend",
        usage: "[service=… public=yes|no|hybrid browser=yes|no|partial env=… …]",
        summary: "which CA fits: public or internal, and why",
        role: None,
    },
    CommandSpec {
        name: "status",
        usage: "REQ-YYYYMMDD-XXXXX",
        summary: "a request's status and approvals (yours, or one you are asked to decide)",
        role: None,
    },
    CommandSpec {
        name: "list",
        usage: "",
        summary: "your requests and certificates",
        role: None,
    },
    CommandSpec {
        name: "approvals",
        usage: "",
        summary: "requests waiting for a decision, with buttons",
        role: Some(Role::Approver),
    },
    CommandSpec {
        name: "approve",
        usage: "REQ-…|SERIAL [comment]",
        summary: "approve a request, or a revocation waiting for an approver",
        role: Some(Role::Approver),
    },
    CommandSpec {
        name: "reject",
        usage: "REQ-…|SERIAL reason",
        summary: "reject a request or a waiting revocation (a reason is required)",
        role: Some(Role::Approver),
    },
    CommandSpec {
        name: "cancel",
        usage: "REQ-… [reason]",
        summary: "withdraw your request before issuance",
        role: None,
    },
    CommandSpec {
        name: "revoke",
        usage: "SERIAL reason [text]",
        summary: "revoke a certificate (RFC 5280 reason, e.g. key_compromise, superseded)",
        role: None,
    },
    CommandSpec {
        name: "confirm-revocation",
        usage: "SERIAL",
        summary: "confirm you revoked a certificate at the CA by hand (when the CA could not be told)",
        role: Some(Role::Admin),
    },
    CommandSpec {
        name: "download",
        usage: "SERIAL [certificate|chain|private_key]",
        summary: "a short-lived link to download a certificate, its chain, or your generated key (once)",
        role: None,
    },
    CommandSpec {
        name: "renew",
        usage: "SERIAL",
        summary: "renew a certificate: a new request like the original, with a fresh key",
        role: None,
    },
    CommandSpec {
        name: "dashboard",
        usage: "",
        summary: "a one-time sign-in link to the read-only dashboard (approvers, admins, auditors)",
        role: Some(Role::Approver),
    },
    CommandSpec {
        name: "audit",
        usage: "QUERY [name=value …] | as-of TIME REQ-…|SERIAL",
        summary: "run an auditors' named query (no name: list them), or see a request as it was at a time",
        role: Some(Role::Auditor),
    },
    CommandSpec {
        name: "config",
        usage: "get KEY | set KEY VALUE",
        summary: "read or change a setting",
        role: Some(Role::Admin),
    },
    CommandSpec {
        name: "grant",
        usage: "@user ROLE",
        summary: "give someone the role user, approver, admin or auditor",
        role: Some(Role::Admin),
    },
    CommandSpec {
        name: "help",
        usage: "",
        summary: "this list",
        role: None,
    },
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    /// `/cert help` (or nothing).
    Help,
    /// `/cert request` with no arguments: the platform opens its form.
    RequestForm,
    /// `/cert request k=v …`.
    Request(BTreeMap<String, String>),
    /// `/cert recommend k=v …`.
    Recommend(BTreeMap<String, String>),
    /// `/cert status REQ-…`.
    Status(String),
    /// `/cert list`.
    List,
    /// `/cert approvals`.
    Approvals,
    /// `/cert approve REQ-… [comment]`.
    Approve {
        /// The request number.
        number: String,
        /// A comment.
        comment: Option<String>,
    },
    /// `/cert reject REQ-… reason`.
    Reject {
        /// The request number.
        number: String,
        /// Why.
        reason: String,
    },
    /// `/cert cancel REQ-… [reason]`.
    Cancel {
        /// The request number.
        number: String,
        /// Why.
        reason: Option<String>,
    },
    /// `/cert revoke SERIAL reason [text]`.
    Revoke {
        /// Serial or id.
        certificate: String,
        /// RFC 5280 reason.
        reason: String,
        /// Free text.
        text: Option<String>,
    },
    /// `/cert download SERIAL [what]`.
    Download {
        /// Serial or id.
        certificate: String,
        /// certificate (default), chain or private_key.
        artifact: Option<String>,
    },
    /// `/cert renew SERIAL`.
    Renew {
        /// Serial or id.
        certificate: String,
    },
    /// `/cert confirm-revocation SERIAL`.
    ConfirmRevocation {
        /// Serial or id.
        certificate: String,
    },
    /// `/cert dashboard`.
    Dashboard,
    /// `/cert audit as-of TIME REQ-…|SERIAL`: a request or a certificate as it was at an
    /// instant.
    AuditAsOf {
        /// The instant, as typed.
        time: String,
        /// The request number or the certificate's serial.
        resource: String,
    },
    /// `/cert audit [query k=v …]`.
    Audit {
        /// The query name, if any.
        query: Option<String>,
        /// Its parameters.
        params: BTreeMap<String, String>,
    },
    /// `/cert config get KEY`.
    ConfigGet(String),
    /// `/cert config set KEY VALUE`.
    ConfigSet {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `/cert grant @user ROLE`.
    Grant {
        /// The platform's reference to the user (a mention or an e-mail).
        user: String,
        /// The role.
        role: String,
    },
}

/// Why a command line could not be parsed: a short usage message for the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    /// What to tell the person.
    pub message: String,
}

fn usage(name: &str, problem: &str) -> UsageError {
    let spec = COMMANDS.iter().find(|c| c.name == name);
    let usage = spec.map_or(String::new(), |s| format!("/cert {} {}", s.name, s.usage));
    UsageError {
        message: format!("{problem}. Usage: `{}`", usage.trim_end()),
    }
}

/// Splits a command line into words; `"double quotes"` keep spaces (also after `key=`), and
/// Slack's typographic quotes count as quotes.
pub fn split_words(text: &str) -> Result<Vec<String>, UsageError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut has_word = false;
    for c in text.chars() {
        match c {
            '"' | '\u{201c}' | '\u{201d}' => {
                in_quotes = !in_quotes;
                has_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_word {
                    words.push(std::mem::take(&mut current));
                    has_word = false;
                }
            }
            c => {
                current.push(c);
                has_word = true;
            }
        }
    }
    if in_quotes {
        return Err(UsageError {
            message: "a quote is not closed".to_owned(),
        });
    }
    if has_word {
        words.push(current);
    }
    Ok(words)
}

fn pairs(name: &str, words: &[String]) -> Result<BTreeMap<String, String>, UsageError> {
    let mut map = BTreeMap::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(usage(name, &format!("{word:?} is not key=value")));
        };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(usage(name, &format!("{word:?} has no key")));
        }
        // Repeated keys (san=a san=b) accumulate, comma-separated.
        map.entry(key)
            .and_modify(|v: &mut String| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    Ok(map)
}

fn rest(words: &[String]) -> Option<String> {
    let text = words.join(" ");
    (!text.trim().is_empty()).then_some(text)
}

/// Parses the text after `/cert`.
pub fn parse(text: &str) -> Result<ChatCommand, UsageError> {
    let words = split_words(text)?;
    let Some((first, args)) = words.split_first() else {
        return Ok(ChatCommand::Help);
    };
    let name = first.to_ascii_lowercase();
    let one = |what: &str| -> Result<String, UsageError> {
        args.first()
            .cloned()
            .ok_or_else(|| usage(&name, &format!("{what} is missing")))
    };
    Ok(match name.as_str() {
        "help" | "?" => ChatCommand::Help,
        "request" | "new" if args.is_empty() => ChatCommand::RequestForm,
        "request" | "new" => ChatCommand::Request(pairs("request", args)?),
        "recommend" => ChatCommand::Recommend(pairs("recommend", args)?),
        "status" => ChatCommand::Status(one("the request number")?),
        "list" | "mine" => ChatCommand::List,
        "approvals" | "queue" => ChatCommand::Approvals,
        "approve" => ChatCommand::Approve {
            number: one("the request number or serial")?,
            comment: rest(&args[1..]),
        },
        "reject" => {
            let number = one("the request number or serial")?;
            let reason = rest(&args[1..]).ok_or_else(|| usage(&name, "a reason is required"))?;
            ChatCommand::Reject { number, reason }
        }
        "cancel" => ChatCommand::Cancel {
            number: one("the request number")?,
            reason: rest(&args[1..]),
        },
        "revoke" => {
            let certificate = one("the serial number")?;
            let reason = args
                .get(1)
                .cloned()
                .ok_or_else(|| usage(&name, "a revocation reason is required"))?;
            ChatCommand::Revoke {
                certificate,
                reason,
                text: rest(&args[2..]),
            }
        }
        "download" => ChatCommand::Download {
            certificate: one("the serial number")?,
            artifact: args.get(1).cloned(),
        },
        "dashboard" => ChatCommand::Dashboard,
        "renew" => ChatCommand::Renew {
            certificate: one("the serial number")?,
        },
        "confirm-revocation" => ChatCommand::ConfirmRevocation {
            certificate: one("the serial number")?,
        },
        "audit"
            if args
                .first()
                .is_some_and(|a| a.eq_ignore_ascii_case("as-of")) =>
        {
            match (args.get(1), args.get(2)) {
                (Some(time), Some(resource)) if args.len() == 3 => ChatCommand::AuditAsOf {
                    time: time.clone(),
                    resource: resource.clone(),
                },
                _ => return Err(usage(&name, "say as-of TIME REQ-… or as-of TIME SERIAL")),
            }
        }
        "audit" => ChatCommand::Audit {
            query: args.first().cloned(),
            params: pairs("audit", args.get(1..).unwrap_or_default())?,
        },
        "config" => match (
            args.first().map(|a| a.to_ascii_lowercase()).as_deref(),
            args.get(1),
        ) {
            (Some("get"), Some(key)) if args.len() == 2 => ChatCommand::ConfigGet(key.clone()),
            (Some("set"), Some(key)) if args.len() >= 3 => ChatCommand::ConfigSet {
                key: key.clone(),
                value: args[2..].join(" "),
            },
            _ => return Err(usage(&name, "say get KEY or set KEY VALUE")),
        },
        "grant" => match args {
            [user, role] => ChatCommand::Grant {
                user: user.clone(),
                role: role.clone(),
            },
            _ => return Err(usage(&name, "name one user and one role")),
        },
        other => {
            return Err(UsageError {
                message: format!("`{other}` is not a /cert command. Try `/cert help`."),
            });
        }
    })
}

/// `/cert help`, from the command table.
pub fn help() -> String {
    let mut text = String::from("*/cert* — certificates from chat\n");
    for spec in COMMANDS {
        let who = match spec.role {
            Some(Role::Approver) => " _(approvers)_",
            Some(Role::Admin) => " _(admins)_",
            Some(Role::Auditor) => " _(auditors, admins)_",
            _ => "",
        };
        let call = format!("/cert {} {}", spec.name, spec.usage);
        text.push_str(&format!(
            "• `{}` — {}{who}\n",
            call.trim_end(),
            spec.summary
        ));
    }
    text
}

/// Whether an approve/reject argument names a certificate (a revocation waiting for an
/// approver) rather than a request (`REQ-…`).
pub fn names_certificate(argument: &str) -> bool {
    !argument.trim().to_ascii_uppercase().starts_with("REQ-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_requests_keep_quoted_values_and_repeat_keys() {
        let parsed = parse(
            "request cn=app.example.com san=www.example.com san=api.example.com \
             why=\u{201c}Customer portal\u{201d} days=90",
        )
        .expect("parses");
        let ChatCommand::Request(fields) = parsed else {
            panic!("not a request: {parsed:?}");
        };
        assert_eq!(fields["cn"], "app.example.com");
        assert_eq!(fields["san"], "www.example.com,api.example.com");
        assert_eq!(fields["why"], "Customer portal");
        assert_eq!(fields["days"], "90");
        assert_eq!(parse("request"), Ok(ChatCommand::RequestForm));
    }

    #[test]
    fn commands_with_positional_arguments() {
        assert_eq!(
            parse("reject REQ-20261127-00001 wrong team"),
            Ok(ChatCommand::Reject {
                number: "REQ-20261127-00001".to_owned(),
                reason: "wrong team".to_owned()
            })
        );
        assert_eq!(
            parse("revoke 0A1B key_compromise laptop stolen"),
            Ok(ChatCommand::Revoke {
                certificate: "0A1B".to_owned(),
                reason: "key_compromise".to_owned(),
                text: Some("laptop stolen".to_owned())
            })
        );
        assert_eq!(
            parse("download 0A1B key"),
            Ok(ChatCommand::Download {
                certificate: "0A1B".to_owned(),
                artifact: Some("key".to_owned())
            })
        );
        assert_eq!(
            parse("renew 0A1B"),
            Ok(ChatCommand::Renew {
                certificate: "0A1B".to_owned()
            })
        );
        assert_eq!(
            parse("config set approval.escalation.hours 24"),
            Ok(ChatCommand::ConfigSet {
                key: "approval.escalation.hours".to_owned(),
                value: "24".to_owned()
            })
        );
        assert_eq!(parse(""), Ok(ChatCommand::Help));
        assert_eq!(
            parse("  STATUS REQ-1"),
            Ok(ChatCommand::Status("REQ-1".to_owned()))
        );
    }

    #[test]
    fn malformed_commands_get_a_short_usage_message() {
        let error = parse("reject REQ-20261127-00001").expect_err("no reason");
        assert_eq!(
            error.message,
            "a reason is required. Usage: `/cert reject REQ-…|SERIAL reason`"
        );
        assert!(parse("frobnicate").is_err_and(|e| e.message.contains("/cert help")));
        assert!(parse("request cn").is_err_and(|e| e.message.contains("key=value")));
        assert!(parse("request why=\"open").is_err_and(|e| e.message.contains("quote")));
        assert!(parse("config get").is_err());
        assert!(parse("grant @jane").is_err());
    }

    #[test]
    fn help_lists_every_command_of_the_table() {
        let text = help();
        for spec in COMMANDS {
            assert!(
                text.contains(&format!("/cert {}", spec.name)),
                "{}",
                spec.name
            );
            // Everything help shows, the parser knows.
            let known = parse(spec.name).is_ok()
                || parse(spec.name).is_err_and(|e| e.message.contains("Usage"));
            assert!(known, "{}", spec.name);
        }
    }

    #[test]
    fn no_line_a_person_types_makes_the_parser_panic() {
        let mut inputs = crate::fuzz::Inputs::new(0x5eed_0001);
        for _ in 0..20_000 {
            let line = inputs.text(12);
            if let Err(usage) = parse(&line) {
                assert!(!usage.message.is_empty(), "{line:?}");
            }
            let mutated =
                inputs.mutate("request cn=app.example.com san=www.example.com why=\"a b\" days=90");
            let _ = parse(&mutated);
        }
    }
}
