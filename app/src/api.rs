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

#[cfg(feature = "ssr")]
fn state() -> Result<crate::server::AppState, ServerFnError> {
    use_context::<crate::server::AppState>()
        .ok_or_else(|| ServerFnError::new("no database in context"))
}

/// A refused or failed participant request: the HTTP status says which (4xx bad input, 409 conflict, 429
/// too many requests, 503 database unavailable, 500 bug) and the message why; a bug's details only go to the
/// log, under an id the message names.
#[cfg(feature = "ssr")]
fn user_error(e: crate::server::fault::AppError) -> ServerFnError {
    use crate::server::fault::AppError;
    if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
        opts.set_status(e.status());
        if let AppError::TooManyRequests(t) = &e
            && let Ok(v) = axum::http::HeaderValue::from_str(&t.retry_after_s.to_string())
        {
            opts.insert_header(axum::http::header::RETRY_AFTER, v);
        }
    }
    ServerFnError::new(e.public_message())
}

/// Looks up the study and any HIT of this assignment. Records nothing.
#[server]
pub async fn enter_study(
    slug: String,
    #[server(default)] params: EntryParams,
) -> Result<Entry, ServerFnError> {
    let st = state()?;
    crate::server::assign::enter(&st.db, &slug, &params)
        .await
        .map_err(user_error)
}

/// Starts (or resumes) the HIT of this assignment after consent. Rate-limited per client address; direct
/// links are tied to a per-browser cookie.
#[server]
pub async fn start_hit(
    slug: String,
    #[server(default)] params: EntryParams,
) -> Result<HitView, ServerFnError> {
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
    result.map_err(user_error)
}

/// Stores the answer to trial `trial` (the HIT's next one); idempotent for a repeated identical answer.
#[server]
pub async fn submit_answer(
    key: String,
    trial: u32,
    side: Side,
    rt_ms: i64,
) -> Result<AnswerAck, ServerFnError> {
    let st = state()?;
    crate::server::answer::answer(&st.db, &key, trial, side, rt_ms)
        .await
        .map_err(user_error)
}
