//! The crate's error type: what went wrong while serving or using the protocol.
//!
//! Every error a client can cause is turned into a JSON ERROR response by the
//! connection handler; this type must never be turned into a panic.

use std::fmt;
use std::io;

/// What went wrong, and so what the connection handler does next.
#[derive(Debug)]
pub enum Error {
    /// The request was wrong but the connection can go on: answer ERROR, keep serving.
    Request(String),
    /// The request was wrong in a way the stream cannot recover from: answer ERROR, then close.
    Fatal(String),
    /// The connection failed, or an answer already under way cannot be
    /// finished (a GET whose file fails mid-way): close without a word.
    /// A failure the client can still be told about is a `Request` error.
    Io(io::Error),
}

impl Error {
    pub fn request(msg: impl Into<String>) -> Error {
        Error::Request(msg.into())
    }
    pub fn fatal(msg: impl Into<String>) -> Error {
        Error::Fatal(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Request(m) | Error::Fatal(m) => f.write_str(m),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
