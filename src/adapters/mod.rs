//! Outbound systems behind traits, each with a production implementation and a local one.
//! Today: the artifact store (local directory); S3, the CAs, mail and chat come with the
//! issuance and chat work.

pub mod artifacts;
pub mod aws;
pub mod ca;
pub mod clock;
pub mod mail;
pub mod oidc;
pub mod s3;
