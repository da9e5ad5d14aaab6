//! How a failed request is answered: refusals of bad input are 4xx with the reason, a database that cannot
//! take writes (read-only file, disk full, server gone) is 503 "try again", anything else 500.

use axum::http::StatusCode;

/// A request that conflicts with what is stored (a finished HIT, a trial already answered differently).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

/// What participants and admins are told when the database refuses writes.
pub const UNAVAILABLE: &str = "The database is unavailable right now (read-only, full or overloaded); nothing \
     was saved. Please try again in a moment.";

/// Whether this database error means "cannot write now" rather than a bug: SQLite BUSY (5) and LOCKED (6)
/// (the busy time-out ran out under load), READONLY (8), IOERR (10), FULL (13), CANTOPEN (14) (extended
/// codes included); PostgreSQL disk_full (53100), out of memory
/// (53200), too many connections (53300), read_only_sql_transaction (25006), admin shutdown (57P0x) and
/// connection failures (08xxx); and lost connections or pool time-outs.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            if code.len() == 5 {
                // PostgreSQL SQLSTATE (always five characters).
                return matches!(code.as_str(), "53100" | "53200" | "53300" | "25006")
                    || code.starts_with("57P0")
                    || code.starts_with("08");
            }
            // SQLite (extended) result code: the primary code is the low byte.
            code.parse::<i64>()
                .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
        }
        _ => false,
    }
}

/// The status for a failed request and the message to show.
pub fn classify(e: &anyhow::Error) -> (StatusCode, String) {
    for cause in e.chain() {
        if let Some(db) = cause.downcast_ref::<sqlx::Error>() {
            return if is_unavailable(db) {
                (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.to_string())
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error (database); it has been logged".to_string(),
                )
            };
        }
        if cause.downcast_ref::<Conflict>().is_some() {
            return (StatusCode::CONFLICT, format!("{e:#}"));
        }
    }
    (StatusCode::BAD_REQUEST, format!("{e:#}"))
}
