//! Types shared by the server and the browser, and the participant-facing server functions.

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
    /// Anonymous participant id of a direct link (assigned on first start, kept in the URL).
    pub pid: Option<String>,
}

/// MTurk's assignmentId while a worker only previews a HIT.
pub const MTURK_PREVIEW: &str = "ASSIGNMENT_ID_NOT_AVAILABLE";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImgView {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialView {
    pub id: i64,
    pub reference: ImgView,
    pub left: ImgView,
    pub right: ImgView,
    pub answer: Option<String>,
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
    /// Keys the HIT (platform-qualified assignment id); sent back with every answer.
    pub key: String,
    /// Direct links: the anonymous id to keep in the URL so a reload resumes.
    pub pid: Option<String>,
    pub trials: Vec<TrialView>,
    pub completion: Option<Completion>,
}

impl HitView {
    pub fn answered(&self) -> usize {
        self.trials.iter().filter(|t| t.answer.is_some()).count()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub slug: String,
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
fn db() -> Result<crate::server::AppState, ServerFnError> {
    use_context::<crate::server::AppState>()
        .ok_or_else(|| ServerFnError::new("no database in context"))
}

/// A refused or failed participant request: the HTTP status says which (4xx bad input, 409 conflict, 503
/// database unavailable, 500 bug) and the message why.
#[cfg(feature = "ssr")]
fn user_error(e: anyhow::Error) -> ServerFnError {
    let (status, message) = crate::server::fault::classify(&e);
    if status.is_server_error() {
        tracing::error!("participant request failed ({status}): {e:#}");
    } else {
        tracing::info!("participant request refused ({status}): {e:#}");
    }
    if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
        opts.set_status(status);
    }
    ServerFnError::new(message)
}

/// Looks up the study and any HIT of this assignment. Records nothing.
#[server]
pub async fn enter_study(slug: String, params: EntryParams) -> Result<Entry, ServerFnError> {
    let st = db()?;
    crate::server::assign::enter(&st.db, &slug, &params)
        .await
        .map_err(user_error)
}

/// Starts (or resumes) the HIT of this assignment after consent.
#[server]
pub async fn start_hit(slug: String, params: EntryParams) -> Result<HitView, ServerFnError> {
    let st = db()?;
    crate::server::assign::start(&st.db, &slug, &params)
        .await
        .map_err(user_error)
}

/// Stores one answer ("left" or "right"); idempotent. Returns the HIT as it now stands.
#[server]
pub async fn submit_answer(
    slug: String,
    key: String,
    trial_id: i64,
    side: String,
    rt_ms: i64,
) -> Result<HitView, ServerFnError> {
    let st = db()?;
    crate::server::assign::answer(&st.db, &slug, &key, trial_id, &side, rt_ms)
        .await
        .map_err(user_error)
}
