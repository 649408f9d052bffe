//! One mapping from driver errors to the domain's, so no driver text reaches
//! a client, outages read as [`StoreError::Unavailable`] (a 503), and
//! duplicate keys name their field.

use auth_core::{StoreError, UniqueField};
use mongodb::error::{Error, ErrorKind, WriteFailure};

use crate::documents::{CLIENTS, EMAIL_INDEX, FACTOR_UNIQUE_INDEX, USERNAME_INDEX};

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Server error codes meaning "not now" (documented in MongoDB's
/// `error_codes.yml`): host unreachable/not found, network timeout, shutdown,
/// interrupted at shutdown, not primary, primary stepped down, node
/// recovering, exceeded time limit.
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

pub(crate) fn map_error(err: Error) -> StoreError {
    if let Some(message) = duplicate_key_message(&err) {
        // MongoDB documents the message as `E11000 duplicate key error
        // collection: <ns> index: <name> dup key: ...`.
        return if message.contains(USERNAME_INDEX) {
            StoreError::Conflict(UniqueField::Username)
        } else if message.contains(EMAIL_INDEX) {
            StoreError::Conflict(UniqueField::Email)
        } else if message.contains(FACTOR_UNIQUE_INDEX) {
            StoreError::Conflict(UniqueField::Factor)
        } else if message.contains(CLIENTS) && message.contains("_id") {
            StoreError::Conflict(UniqueField::ClientId)
        } else {
            StoreError::Other(format!("duplicate key: {message}"))
        };
    }
    let transient = match err.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Command(command) => TRANSIENT_CODES.contains(&command.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => {
            TRANSIENT_CODES.contains(&concern.code)
        }
        _ => false,
    } || err.contains_label("RetryableWriteError")
        || err.contains_label("TransientTransactionError");
    if transient {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Other(err.to_string())
    }
}

/// The server's message when `err` is a duplicate-key error.
pub(crate) fn duplicate_key_message(err: &Error) -> Option<&str> {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) if write.code == DUPLICATE_KEY => {
            Some(&write.message)
        }
        ErrorKind::Command(command) if command.code == DUPLICATE_KEY => Some(&command.message),
        _ => None,
    }
}

pub(crate) fn is_duplicate_key(err: &Error) -> bool {
    duplicate_key_message(err).is_some()
}

/// A driver call that did not answer within the store's operation timeout.
pub(crate) fn timed_out(after: std::time::Duration) -> StoreError {
    StoreError::Unavailable(format!("MongoDB did not answer within {after:?}"))
}
