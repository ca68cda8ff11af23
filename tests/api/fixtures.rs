//! Shared fixtures: the command service on a test database, people, and typical requests.

use cert_assistant::commands::{CommandContext, Commands, RequestForm};
use cert_assistant::domain::actor::{Platform, Role};
use cert_assistant::domain::values::Email;
use cert_assistant::pki::envelope::KeyEncryptionKey;

use crate::helpers::TestDb;

pub const KEK: &str = "q9Yc4r1b6a3M0x7tZpWmVfQhKjLnE2uS8dG5yB1cA0o=";

pub fn ctx(email: &str) -> CommandContext {
    CommandContext::new(Email::parse(email).expect("email"), Platform::Cli)
}

pub fn service(db: &TestDb) -> Commands {
    Commands::new(
        db.pool.clone(),
        KeyEncryptionKey::from_base64(KEK).expect("kek"),
        &["root@example.com".to_owned()],
    )
}

pub fn web_request(cn: &str) -> RequestForm {
    RequestForm {
        common_name: cn.to_owned(),
        subject_alternative_names: vec![format!("www.{cn}")],
        certificate_type: "web_server".to_owned(),
        validity_days: Some("90".to_owned()),
        justification: "Customer portal".to_owned(),
        ..RequestForm::default()
    }
}

pub async fn approver(commands: &Commands, email: &str) -> CommandContext {
    commands
        .grant_role(
            &ctx("root@example.com"),
            &Email::parse(email).expect("email"),
            Role::Approver,
        )
        .await
        .expect("grant");
    ctx(email)
}
