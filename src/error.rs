//! The library's error type. Every error is the user's to fix (a file, an argument), so each
//! maps to exit code 2; the message names the file or argument, the place and the problem.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be used: unreadable, malformed, or describing an invalid network.
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    /// A network or input that fails validation, before a file is attached to it.
    #[error("{0}")]
    Invalid(String),
    /// An argument or a combination of arguments that cannot be honoured.
    #[error("{0}")]
    Usage(String),
    /// Writing results failed.
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn file(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            problem: problem.into(),
        }
    }

    pub fn write(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Attach a file to a validation error raised without one.
    pub fn in_file(self, path: impl AsRef<Path>) -> Self {
        match self {
            Error::Invalid(problem) => Error::file(path, problem),
            other => other,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// Shorthand for a validation failure.
pub fn invalid(problem: impl Into<String>) -> Error {
    Error::Invalid(problem.into())
}
