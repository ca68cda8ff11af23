use super::RequestStatus;
use crate::domain::values::ValueError;

/// Why a request command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A field of the request is not acceptable.
    #[error("{0}")]
    Invalid(#[from] ValueError),
    /// The request id is taken.
    #[error("request {0} already exists")]
    AlreadyExists(String),
    /// The command needs a request that was created first.
    #[error("there is no such request")]
    NotFound,
    /// The actor may not do this.
    #[error("{0}")]
    NotAllowed(String),
    /// The command does not fit the request's current status.
    #[error("request {number} is {status}; {action} is only possible when it is {allowed}")]
    WrongStatus {
        /// The request number.
        number: String,
        /// Its status now.
        status: RequestStatus,
        /// What was attempted.
        action: &'static str,
        /// The statuses in which it would work.
        allowed: String,
    },
    /// What the CA answered cannot be recorded.
    #[error("{0}")]
    InvalidCaAnswer(String),
}
