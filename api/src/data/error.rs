//! Errors of reading and writing dataset files: every bad row names its file, line and field.

use std::path::PathBuf;

/// A dataset file could not be read, written or understood. Nothing is half-loaded: a load that
/// returns this error returns no data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}:{line}: field `{field}`: {problem}", file.display())]
    Row { file: PathBuf, line: u64, field: String, problem: String },
    #[error("{}: {problem}", file.display())]
    File { file: PathBuf, problem: String },
    #[error("{}: {source}", file.display())]
    Io { file: PathBuf, source: std::io::Error },
}

impl DataError {
    pub fn row(file: &std::path::Path, line: u64, field: impl Into<String>, problem: impl ToString) -> Self {
        DataError::Row { file: file.to_owned(), line, field: field.into(), problem: problem.to_string() }
    }

    pub fn io(file: &std::path::Path, source: std::io::Error) -> Self {
        DataError::Io { file: file.to_owned(), source }
    }

    pub fn file(file: &std::path::Path, problem: impl ToString) -> Self {
        DataError::File { file: file.to_owned(), problem: problem.to_string() }
    }
}
