//! Types shared by the server and the browser, and the participant-facing server functions.
//!
//! Nothing here tells a condition or an attention check apart: images are random per-HIT URLs of equal
//! size per scene, trials are numbered by position, and the HIT is named by a random token.

use serde::{Deserialize, Serialize};

/// The query parameters a participant arrives with (MTurk ExternalQuestion, Prolific, or a direct link).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryParams {
    pub assignment_id: Option<String>,
    pub hit_id: Option<String>,
    pub worker_id: Option<String>,
    pub turk_submit_to: Option<String>,
    pub prolific_pid: Option<String>,
    pub prolific_study_id: Option<String>,
    pub prolific_session_id: Option<String>,
    /// Anonymous participant id of a direct link (issued by the server on the first start, kept in the URL
    /// so a reload resumes).
    pub pid: Option<String>,
}

/// MTurk's assignmentId while a worker only previews a HIT.
pub const MTURK_PREVIEW: &str = "ASSIGNMENT_ID_NOT_AVAILABLE";

/// The side a participant picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "left" => Some(Side::Left),
            "right" => Some(Side::Right),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImgView {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialView {
    /// Position in the HIT (0-based); answers name it.
    pub position: u32,
    pub reference: ImgView,
    pub left: ImgView,
    pub right: ImgView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completion {
    /// Auto-POST a form to `action` (= `{turkSubmitTo}/mturk/externalSubmit`) with the assignmentId.
    Mturk {
        action: String,
        assignment_id: String,
        code: String,
    },
    /// Redirect to the study's Prolific completion URL.
    Prolific { url: String, code: String },
    /// Show the completion code.
    Direct { code: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitView {
    /// The HIT's random token; sent back with every answer.
    pub key: String,
    /// Direct links: the anonymous id to keep in the URL so a reload resumes.
    pub pid: Option<String>,
    pub trials: Vec<TrialView>,
    /// Trials answered so far: the next answer is for trial `answered`.
    pub answered: u32,
    pub completion: Option<Completion>,
}

/// The server's reply to one answer: only what the page needs next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerAck {
    pub answered: u32,
    pub completion: Option<Completion>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub slug: String,
    /// Empty for studies that are not public (draft, complete, closed).
    pub study_name: String,
    pub question: String,
    pub synthetic: bool,
    /// MTurk preview: show instructions and an example, record nothing.
    pub preview: bool,
    /// Whether a new HIT may be started now (study live, worker not blocked, under the HIT limit).
    pub can_start: bool,
    /// Why not, if not.
    pub message: Option<String>,
    pub example: Option<TrialView>,
    /// An existing HIT for this assignment (resume after reload).
    pub hit: Option<HitView>,
}

use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// Why a participant request failed; the HTTP status follows from the kind (set on the server when the
/// error is made, also for arguments that do not parse, so no middleware has to read response bodies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantError {
    /// 400: the request is malformed (a field missing or of the wrong type, an invalid id).
    BadRequest(String),
    /// 404: no such study, HIT or trial.
    NotFound(String),
    /// 409: not possible now (the study is paused or complete, the trial was answered, ...).
    Conflict(String),
    /// 413: the request body is too large.
    TooLarge(String),
    /// 429: too many requests from this address.
    TooManyRequests(String),
    /// 503: the database cannot take writes right now.
    Unavailable(String),
    /// 500: a bug; the message names a reference into the server's log, nothing else.
    Internal(String),
}

impl ParticipantError {
    pub fn message(&self) -> &str {
        match self {
            ParticipantError::BadRequest(m)
            | ParticipantError::NotFound(m)
            | ParticipantError::Conflict(m)
            | ParticipantError::TooLarge(m)
            | ParticipantError::TooManyRequests(m)
            | ParticipantError::Unavailable(m)
            | ParticipantError::Internal(m) => m,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ParticipantError::BadRequest(_) => 400,
            ParticipantError::NotFound(_) => 404,
            ParticipantError::Conflict(_) => 409,
            ParticipantError::TooLarge(_) => 413,
            ParticipantError::TooManyRequests(_) => 429,
            ParticipantError::Unavailable(_) => 503,
            ParticipantError::Internal(_) => 500,
        }
    }

    /// Sets the response's status from the error's kind (server only; the browser only reads it).
    fn with_status(self) -> Self {
        #[cfg(feature = "ssr")]
        if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
            opts.set_status(
                axum::http::StatusCode::from_u16(self.status())
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
        self
    }
}

impl std::fmt::Display for ParticipantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ParticipantError {}

impl FromServerFnError for ParticipantError {
    type Encoder = JsonEncoding;

    /// Errors of the server-function machinery itself: arguments that do not parse are the client's fault
    /// (400, or 413 for a body over the limit), a failed request from the browser is reported as such.
    fn from_server_fn_error(e: ServerFnErrorErr) -> Self {
        match e {
            ServerFnErrorErr::Args(m)
            | ServerFnErrorErr::Deserialization(m)
            | ServerFnErrorErr::MissingArg(m) => {
                if m.contains("length limit exceeded") {
                    ParticipantError::TooLarge(format!(
                        "the request is larger than the limit of {} bytes",
                        MAX_BODY_BYTES
                    ))
                } else {
                    ParticipantError::BadRequest(m)
                }
            }
            ServerFnErrorErr::Request(m) => {
                ParticipantError::Unavailable(format!("the server could not be reached: {m}"))
            }
            other => ParticipantError::Internal(other.to_string()),
        }
        .with_status()
    }
}

/// Largest request body a participant route accepts (answers are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[cfg(feature = "ssr")]
fn state() -> Result<crate::server::AppState, ParticipantError> {
    use_context::<crate::server::AppState>()
        .ok_or_else(|| ParticipantError::Internal("no server state in context".into()))
}

#[cfg(feature = "ssr")]
impl From<crate::server::fault::AppError> for ParticipantError {
    /// The server's error, with its status set on the response; a bug's details only go to the log.
    fn from(e: crate::server::fault::AppError) -> Self {
        use crate::server::fault::AppError;
        let retry = match &e {
            AppError::TooManyRequests(t) => Some(t.retry_after_s),
            _ => None,
        };
        let message = e.public_message();
        let out = match e {
            AppError::BadRequest(_) | AppError::Unauthorized(_) | AppError::Forbidden(_) => {
                ParticipantError::BadRequest(message)
            }
            AppError::NotFound(_) => ParticipantError::NotFound(message),
            AppError::Conflict(_) => ParticipantError::Conflict(message),
            AppError::TooManyRequests(_) => ParticipantError::TooManyRequests(message),
            AppError::Unavailable(_) => ParticipantError::Unavailable(message),
            AppError::Internal(_) => ParticipantError::Internal(message),
        }
        .with_status();
        if let (Some(s), Some(opts)) = (retry, use_context::<leptos_axum::ResponseOptions>())
            && let Ok(v) = axum::http::HeaderValue::from_str(&s.to_string())
        {
            opts.insert_header(axum::http::header::RETRY_AFTER, v);
        }
        out
    }
}

/// Looks up the study and any HIT of this assignment. Records nothing.
#[server]
pub async fn enter_study(
    slug: String,
    #[server(default)] params: EntryParams,
) -> Result<Entry, ParticipantError> {
    let st = state()?;
    Ok(crate::server::assign::enter(&st.db, &slug, &params).await?)
}

/// Starts (or resumes) the HIT of this assignment after consent. Rate-limited per client address; direct
/// links are tied to a per-browser cookie.
#[server]
pub async fn start_hit(
    slug: String,
    #[server(default)] params: EntryParams,
) -> Result<HitView, ParticipantError> {
    let st = state()?;
    let client = crate::server::limits::Client::from_request(&st).await;
    let result = match st.limiter.check_start(client.ip) {
        Ok(()) => {
            crate::server::assign::start(&st.db, &slug, &params, &client.browser, st.assign_seed)
                .await
        }
        Err(e) => Err(e.into()),
    };
    client.finish();
    Ok(result?)
}

/// Stores the answer to trial `trial` (the HIT's next one); idempotent for a repeated identical answer.
#[server]
pub async fn submit_answer(
    key: String,
    trial: u32,
    side: Side,
    rt_ms: i64,
) -> Result<AnswerAck, ParticipantError> {
    let st = state()?;
    Ok(crate::server::answer::answer(&st.db, &key, trial, side, rt_ms).await?)
}
