//! How a failed request is answered. [`AppError`] says what kind of failure it is, and that alone decides
//! the status: refusals (bad input 400, unknown 404, conflict 409, too many requests 429) carry their reason
//! to the client; a database that cannot take writes now (read-only file, disk full, overload) is 503 "try
//! again"; anything else is a bug: 500 with a generic message and an id, the details only in the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What participants and admins are told when the database refuses writes.
pub const UNAVAILABLE: &str = "The database is unavailable right now (read-only, full or overloaded); nothing \
     was saved. Please try again in a moment.";

/// A request that conflicts with what is stored (a finished HIT, a trial already answered differently).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

/// Too many requests from one client; retry after the given seconds.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TooManyRequests {
    pub message: String,
    pub retry_after_s: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    TooManyRequests(#[from] TooManyRequests),
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error(transparent)]
    Internal(anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> AppError {
        if is_unavailable(&e) {
            AppError::Unavailable(e)
        } else {
            AppError::Internal(e.into())
        }
    }
}

impl From<anyhow::Error> for AppError {
    /// An error from code that reports with `anyhow`: a database outage stays 503, a [`Conflict`] 409, a
    /// [`TooManyRequests`] 429; everything else is internal.
    fn from(e: anyhow::Error) -> AppError {
        for cause in e.chain() {
            if let Some(db) = cause.downcast_ref::<sqlx::Error>()
                && is_unavailable(db)
            {
                return AppError::Internal(e).into_unavailable();
            }
            if let Some(c) = cause.downcast_ref::<Conflict>() {
                return AppError::Conflict(c.0.clone());
            }
            if let Some(t) = cause.downcast_ref::<TooManyRequests>() {
                return AppError::TooManyRequests(t.clone());
            }
        }
        AppError::Internal(e)
    }
}

impl AppError {
    fn into_unavailable(self) -> AppError {
        match self {
            AppError::Internal(e) => match e.downcast::<sqlx::Error>() {
                Ok(db) => AppError::Unavailable(db),
                Err(e) => AppError::Unavailable(sqlx::Error::Protocol(format!("{e:#}"))),
            },
            other => other,
        }
    }

    pub fn bad_request(m: impl Into<String>) -> AppError {
        AppError::BadRequest(m.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message for the client; logs what the client is not told.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unavailable(e) => {
                tracing::warn!("database unavailable: {e}");
                UNAVAILABLE.to_string()
            }
            AppError::Internal(e) => {
                let id = error_id();
                tracing::error!(error_id = %id, "internal error: {e:#}");
                format!(
                    "Internal error (reference {id}); it has been logged. Please try again later."
                )
            }
            AppError::TooManyRequests(t) => t.message.clone(),
            other => other.to_string(),
        }
    }
}

/// A short random id that ties a generic error message to its log line.
fn error_id() -> String {
    super::media::new_token()[..12].to_string()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = match &self {
            AppError::TooManyRequests(t) => Some(t.retry_after_s),
            _ => None,
        };
        let mut r = (status, self.public_message()).into_response();
        if let Some(s) = retry
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

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

/// Whether an error of code that reports with `anyhow` came from the database (rather than from the
/// input it was checking): such errors are 5xx, never shown as the user's mistake.
pub fn is_infrastructure(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<sqlx::Error>().is_some())
}

/// An error of code that reports with `anyhow`, where everything but a database failure is the client's:
/// the database failure stays 5xx, anything else becomes `kind(message)`.
pub fn refusal(e: anyhow::Error, kind: impl FnOnce(String) -> AppError) -> AppError {
    if is_infrastructure(&e) {
        AppError::from(e)
    } else {
        kind(format!("{e:#}"))
    }
}

/// Whether a PostgreSQL transaction failed only because it lost a race (deadlock 40P01, serialization
/// 40001) and may simply be run again.
pub fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01") | Some("40001")))
}

/// The status and message for a failed request of code that reports with `anyhow` and marks refusals only
/// by [`Conflict`]/[`TooManyRequests`]: anything unmarked is taken as the client's bad input (400). The
/// admin pages and the bundle import still report this way.
pub fn classify(e: &anyhow::Error) -> (StatusCode, String) {
    for cause in e.chain() {
        if let Some(db) = cause.downcast_ref::<sqlx::Error>() {
            return if is_unavailable(db) {
                (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.to_string())
            } else {
                let id = error_id();
                tracing::error!(error_id = %id, "internal error (database): {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Internal error (reference {id}); it has been logged."),
                )
            };
        }
        if cause.downcast_ref::<Conflict>().is_some() {
            return (StatusCode::CONFLICT, format!("{e:#}"));
        }
        if let Some(t) = cause.downcast_ref::<TooManyRequests>() {
            return (StatusCode::TOO_MANY_REQUESTS, t.message.clone());
        }
    }
    (StatusCode::BAD_REQUEST, format!("{e:#}"))
}
