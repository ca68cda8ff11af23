//! Keys and CSRs: generating them (rcgen, aws-lc-rs), reading uploaded CSRs (x509-parser),
//! and encrypting private keys before they leave memory. Pure computation, no I/O.

pub mod csr;
pub mod envelope;
pub mod key_file;
pub mod key_store;
pub mod keygen;
pub mod names;
