use cqrs_es::AggregateError;

use crate::domain::values::ValueError;

/// Why a command did not happen. Every variant but `Internal` is meant for the person who
/// asked; `Internal` is logged and shown as a fixed message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Some fields are not acceptable (all of them are listed, for per-field errors).
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ValueError>),
    /// A rule of the domain refused it (the message says which).
    #[error("{0}")]
    Refused(String),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Others changed the same thing at the same moment, more than a few times in a row.
    /// Retrying with a fresh load will work.
    #[error("{0} was changed by someone else at the same moment; please try again")]
    Conflict(String),
    /// Something broke (database down, bug). Details are in the log, not here.
    #[error("something went wrong on our side; the details are in the service log")]
    Internal(#[source] anyhow::Error),
}

impl CommandError {
    /// Whether repeating the command may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    pub(crate) fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    pub(crate) fn from_aggregate<E>(what: &str, error: AggregateError<E>) -> Self
    where
        E: std::error::Error + Into<CommandError>,
    {
        match error {
            AggregateError::UserError(e) => e.into(),
            AggregateError::AggregateConflict => Self::Conflict(what.to_owned()),
            AggregateError::DatabaseConnectionError(e)
            | AggregateError::DeserializationError(e)
            | AggregateError::UnexpectedError(e) => Self::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<crate::eventstore::AppendError> for CommandError {
    fn from(error: crate::eventstore::AppendError) -> Self {
        match error {
            crate::eventstore::AppendError::Exists(what) => Self::Conflict(what),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<ValueError> for CommandError {
    fn from(error: ValueError) -> Self {
        Self::Invalid(vec![error])
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<crate::domain::request::RequestError> for CommandError {
    fn from(error: crate::domain::request::RequestError) -> Self {
        use crate::domain::request::RequestError;
        match error {
            RequestError::Invalid(e) => Self::Invalid(vec![e]),
            RequestError::NotFound => Self::NotFound("there is no such request".to_owned()),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl From<crate::domain::approval::ApprovalError> for CommandError {
    fn from(error: crate::domain::approval::ApprovalError) -> Self {
        Self::Refused(error.to_string())
    }
}

impl From<crate::domain::certificate::CertificateError> for CommandError {
    fn from(error: crate::domain::certificate::CertificateError) -> Self {
        use crate::domain::certificate::CertificateError;
        match error {
            CertificateError::NotFound => Self::NotFound(error.to_string()),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl From<crate::domain::refusal::AlreadyRecorded> for CommandError {
    fn from(error: crate::domain::refusal::AlreadyRecorded) -> Self {
        Self::Internal(error.into())
    }
}

impl From<crate::domain::config::NotAnAdmin> for CommandError {
    fn from(error: crate::domain::config::NotAnAdmin) -> Self {
        Self::Refused(error.to_string())
    }
}

impl From<crate::domain::notification::NotificationError> for CommandError {
    fn from(error: crate::domain::notification::NotificationError) -> Self {
        Self::Refused(error.to_string())
    }
}

impl From<crate::domain::user::UserError> for CommandError {
    fn from(error: crate::domain::user::UserError) -> Self {
        Self::Refused(error.to_string())
    }
}

impl From<crate::eventstore::LookupError> for CommandError {
    fn from(error: crate::eventstore::LookupError) -> Self {
        Self::Internal(error.into())
    }
}
