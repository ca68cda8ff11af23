//! Fuzzes the reader of ADCS certsrv answer pages.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cert_assistant::fuzz::certsrv_page(data));
