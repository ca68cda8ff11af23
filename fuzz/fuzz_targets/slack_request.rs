//! Fuzzes Slack form deliveries: signature check, slash command, interaction payload.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cert_assistant::fuzz::slack_request(data));
