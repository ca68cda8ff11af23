//! Revocation at an ADCS CA through an operator's command. certsrv has no revocation page
//! (ADCS revokes through MS-CSRA, `certutil -revoke` or PSPKI), so the service runs a command
//! the operator configures — e.g. `ssh ca01 certutil -revoke {serial} {reason}` followed by
//! `certutil -crl`, or a PowerShell script using PSPKI. No shell is involved: the words are
//! passed as they are, with `{serial}`, `{reason}` (the CRL reason code certutil takes) and
//! `{reason_name}` replaced.

use std::process::Stdio;
use std::time::Duration;

use super::CaError;
use crate::domain::values::RevocationReason;

/// How much of the command's error output a failure message carries.
const STDERR_TAIL: usize = 400;

/// The configured command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeHook {
    argv: Vec<String>,
    timeout: Duration,
}

impl RevokeHook {
    /// A hook running `argv` (the program first); `None` when it is empty.
    pub fn new(argv: Vec<String>, timeout: Duration) -> Option<Self> {
        if argv.first().is_none_or(|program| program.trim().is_empty()) {
            return None;
        }
        Some(Self { argv, timeout })
    }

    /// The command line for one revocation.
    fn words(&self, serial: &str, reason: RevocationReason) -> Vec<String> {
        self.argv
            .iter()
            .map(|word| {
                word.replace("{serial}", serial)
                    .replace("{reason}", &reason.code().to_string())
                    .replace("{reason_name}", reason.as_str())
            })
            .collect()
    }

    /// Runs it: success when it exits 0. A command that cannot be started is a configuration
    /// error (permanent); a failing or hanging one may succeed later (transient).
    pub async fn revoke(&self, serial: &str, reason: RevocationReason) -> Result<(), CaError> {
        let words = self.words(serial, reason);
        let mut command = tokio::process::Command::new(&words[0]);
        command
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| {
            CaError::Permanent(format!(
                "the revoke command ({}) could not be started: {e}",
                words[0]
            ))
        })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(CaError::Transient(format!(
                    "the revoke command failed: {e}"
                )));
            }
            Err(_) => {
                return Err(CaError::Transient(format!(
                    "the revoke command did not finish within {} s",
                    self.timeout.as_secs()
                )));
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let tail: String = stderr
            .chars()
            .skip(stderr.chars().count().saturating_sub(STDERR_TAIL))
            .collect();
        Err(CaError::Transient(format!(
            "the revoke command exited with {}: {tail}",
            output
                .status
                .code()
                .map_or_else(|| "a signal".to_owned(), |code| code.to_string())
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(argv: &[&str]) -> RevokeHook {
        RevokeHook::new(
            argv.iter().map(|w| (*w).to_owned()).collect(),
            Duration::from_secs(5),
        )
        .expect("hook")
    }

    #[test]
    fn placeholders_become_the_serial_and_the_reason_code() {
        let words = hook(&[
            "certutil",
            "-revoke",
            "{serial}",
            "{reason}",
            "{reason_name}",
        ])
        .words("0A1B", RevocationReason::Superseded);
        assert_eq!(words, ["certutil", "-revoke", "0A1B", "4", "superseded"]);
        assert_eq!(RevokeHook::new(Vec::new(), Duration::from_secs(1)), None);
        assert_eq!(
            RevokeHook::new(vec![" ".to_owned()], Duration::from_secs(1)),
            None
        );
    }

    #[tokio::test]
    async fn success_failure_and_a_missing_program_are_told_apart() {
        assert_eq!(
            hook(&["true"])
                .revoke("0A1B", RevocationReason::KeyCompromise)
                .await,
            Ok(())
        );
        let failed = hook(&["sh", "-c", "echo CA is offline >&2; exit 3"])
            .revoke("0A1B", RevocationReason::KeyCompromise)
            .await;
        assert_eq!(
            failed,
            Err(CaError::Transient(
                "the revoke command exited with 3: CA is offline".to_owned()
            ))
        );
        let missing = hook(&["/nonexistent/certutil"])
            .revoke("0A1B", RevocationReason::KeyCompromise)
            .await;
        assert!(matches!(missing, Err(CaError::Permanent(_))), "{missing:?}");
        let slow = RevokeHook::new(vec!["sleep".into(), "5".into()], Duration::from_millis(100))
            .expect("hook")
            .revoke("0A1B", RevocationReason::KeyCompromise)
            .await;
        assert!(matches!(slow, Err(CaError::Transient(m)) if m.contains("did not finish")));
    }
}
