//! The shim's one error type, mapped once to ttrpc status codes so
//! containerd (and `ctr`) see NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT,
//! FAILED_PRECONDITION and UNIMPLEMENTED where they apply.

use containerd_shim::protos::ttrpc::{self, Code};

use crate::runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Internal(String),
}

impl ShimError {
    pub fn code(&self) -> Code {
        match self {
            ShimError::NotFound(_) => Code::NOT_FOUND,
            ShimError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            ShimError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            ShimError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            ShimError::Unimplemented(_) => Code::UNIMPLEMENTED,
            ShimError::Runtime(_) | ShimError::Internal(_) => Code::UNKNOWN,
        }
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> ShimError {
        ShimError::Internal(format!("{context}: {e}"))
    }
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> Self {
        // containerd 1.6 and early 1.7 pass shim errors through a printf-style
        // formatter (status.Errorf in errdefs.ToGRPC), which turns "%file"
        // into "%!f(MISSING)"; a doubled percent comes out there as one.
        let message = e.to_string().replace('%', "%%");
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), message))
    }
}

pub type Result<T, E = ShimError> = std::result::Result<T, E>;
