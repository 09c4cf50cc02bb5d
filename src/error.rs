//! The library's error type. Every error is the user's to fix (a file, an argument), so each
//! maps to exit code 2 (but an interrupted run: 130); the message names the file or argument,
//! the place and the problem.

use std::path::{Path, PathBuf};

/// What can go wrong in the library; every variant is shown as `path: problem` or the
/// message alone, and every one but [`Error::Interrupted`] maps to exit code 2
/// ([`Error::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be used: unreadable, malformed, or describing an invalid network.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file at fault; the message starts with it.
        path: PathBuf,
        /// What is wrong with it, shown after the path.
        problem: String,
    },
    /// A network or input that fails validation, before a file is attached to it.
    #[error("{0}")]
    Invalid(String),
    /// An argument or a combination of arguments that cannot be honoured.
    #[error("{0}")]
    Usage(String),
    /// Ctrl-C or SIGTERM stopped a run that can be continued from `dir`; exit code 130.
    #[error("interrupted: resume with dtdcert audit --resume {}", dir.display())]
    Interrupted {
        /// The run's folder.
        dir: PathBuf,
    },
    /// Writing results failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file or folder that could not be written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The library's result type: [`Error`] unless another error type is named.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::File`] for `path` with the given problem.
    pub fn file(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            problem: problem.into(),
        }
    }

    /// An [`Error::Write`] for `path`, keeping the I/O error as its source.
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

    /// The process exit code for this error: 130 for an interrupted run (as a shell reports
    /// a process ended by Ctrl-C), 2 for every other.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted { .. } => 130,
            _ => 2,
        }
    }
}

/// Shorthand for a validation failure.
pub fn invalid(problem: impl Into<String>) -> Error {
    Error::Invalid(problem.into())
}
