//! `cert-assistant config ...`: the settings in `system_config`.

use std::io::Write as _;

use clap::Subcommand;
use sqlx::PgPool;

use crate::commands::{CommandContext, CommandError, Commands};
use crate::domain::actor::Platform;
use crate::domain::values::Email;

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every setting with its type and description (sensitive values hidden).
    List,
    /// One setting's value.
    Get {
        /// The key, e.g. approval.escalation.hours.
        key: String,
    },
    /// Change a setting (admins only); recorded as an event and audited.
    Set {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// string, integer, boolean or json (default: the key's current type).
        #[arg(long = "type")]
        value_type: Option<String>,
        /// Who changes it (an admin's e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
}

fn say(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Runs a `config` subcommand. Reads come from the read model, so they show a change once
/// the projector has applied it.
pub async fn run(commands: &Commands, command: ConfigCommand) -> Result<(), CommandError> {
    match command {
        ConfigCommand::List => {
            for (key, value, value_type, description) in read(commands.pool(), None).await? {
                say(&format!(
                    "{key} = {value}  ({value_type}){}",
                    description.map(|d| format!("  {d}")).unwrap_or_default()
                ));
            }
        }
        ConfigCommand::Get { key } => {
            let rows = read(commands.pool(), Some(&key)).await?;
            let Some((_, value, _, _)) = rows.first() else {
                return Err(CommandError::NotFound(format!("there is no setting {key}")));
            };
            say(value);
        }
        ConfigCommand::Set {
            key,
            value,
            value_type,
            actor,
        } => {
            let ctx = CommandContext::new(Email::parse(&actor)?, Platform::Cli);
            let setting = commands
                .set_config(&ctx, &key, &value, value_type.as_deref())
                .await?;
            say(&format!("{} = {}", setting.key, setting.value));
        }
    }
    Ok(())
}

type Row = (String, String, String, Option<String>);

async fn read(pool: &PgPool, key: Option<&str>) -> Result<Vec<Row>, CommandError> {
    Ok(sqlx::query_as(
        "SELECT config_key, \
                CASE WHEN coalesce(is_sensitive, false) THEN '[hidden]' ELSE config_value END, \
                value_type, description \
           FROM system_config WHERE $1::text IS NULL OR config_key = $1 ORDER BY config_key",
    )
    .bind(key)
    .fetch_all(pool)
    .await?)
}
