//! Admin pages: server-rendered HTML forms (no script needed; templates in `pages`), every state-changing
//! form protected by the session's CSRF token. Studies list + bundle upload, study page (state, links,
//! progress, HITs with their quality flags, block worker, settings with the quality rules, MTurk
//! ExternalQuestion XML). Handlers return [`AppResult`]; the logged-in admin is the [`Admin`] extractor.

use std::net::SocketAddr;

use axum::Extension;
use axum::Router;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, Form, FromRequestParts, Multipart, Path, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use super::auth::{self, SESSION_COOKIE, Session};
use super::bundle;
use super::db;
use super::fault::{AppError, AppResult, TooManyRequests};
use super::limits;
use super::pages::{self, page, post_button};
use super::quality::{Flags, QcScope, Rules};
use super::study::{self, Study, StudySettings, StudyState};

const LOGIN_CSRF_COOKIE: &str = "jndlab_login_csrf";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(studies_page))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route(
            "/admin/import",
            post(import).layer(DefaultBodyLimit::max(1024 * 1024 * 1024)),
        )
        .route("/admin/studies/{id}", get(study_page))
        .route("/admin/studies/{id}/state", post(set_state))
        .route("/admin/studies/{id}/settings", post(settings))
        .route("/admin/studies/{id}/block", post(block))
        .route("/admin/studies/{id}/unblock", post(unblock))
}

/// The logged-in admin of a request. Without a valid session a page (GET) redirects to the login and a
/// state change (POST) is 401: a POST is never replayed after logging in.
pub struct Admin(pub Session);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Admin, Response> {
        let session = match limits::cookie(&parts.headers, SESSION_COOKIE) {
            Some(t) => auth::session(&st.db, &t)
                .await
                .map_err(|e| AppError::from(e).into_response())?,
            None => None,
        };
        match session {
            Some(s) => Ok(Admin(s)),
            None if parts.method == Method::GET => {
                Err(Redirect::to("/admin/login").into_response())
            }
            None => Err(AppError::Unauthorized(
                "not logged in (or the session expired): log in at /admin/login and try again"
                    .into(),
            )
            .into_response()),
        }
    }
}

impl Admin {
    /// The session, if the form's CSRF token is its own.
    pub fn checked(&self, csrf: &str) -> AppResult<&Session> {
        if self.0.csrf_ok(csrf) {
            Ok(&self.0)
        } else {
            Err(AppError::Forbidden(
                "invalid or missing CSRF token: reload the page and try again".into(),
            ))
        }
    }
}

fn set_cookie(st: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let c = cookie::Cookie::build((name, value))
        .path("/admin")
        .http_only(true)
        .secure(st.secure_cookies)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&c.to_string()).expect("cookie is ascii")
}

/// An HTML response with a status.
fn html_page(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

async fn login_page(State(st): State<AppState>) -> Response {
    login_form(&st, StatusCode::OK, None)
}

fn login_form(st: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let token = db::random_token(32);
    let body = html! {
        @if let Some(e) = error { p class="error" id="login-error" { (e) } }
        form method="post" action="/admin/login" id="login-form" {
            input type="hidden" name="csrf" value=(token);
            label { "User name " input name="username" id="username" autocomplete="username" required; }
            label { "Password " input name="password" id="password" type="password" autocomplete="current-password" required; }
            button type="submit" id="login" { "Log in" }
        }
    };
    let mut resp = html_page(status, page("Log in", None, body));
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(st, LOGIN_CSRF_COOKIE, &token, 3600),
    );
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login(
    State(st): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> AppResult<Response> {
    let ip = limits::client_ip(&headers, peer.map(|p| p.0.0), &st.limiter.limits);
    let trusted = match limits::cookie(&headers, auth::DEVICE_COOKIE) {
        Some(d) => auth::is_trusted_device(&st.db, &f.username, &d).await?,
        None => false,
    };
    if let Err(wait) = auth::LOGIN_THROTTLE.check(ip, &f.username, trusted) {
        return Err(TooManyRequests {
            message: format!(
                "too many failed logins for \"{}\" or from this address: try again in {} s",
                f.username.chars().take(64).collect::<String>(),
                wait.as_secs().max(1)
            ),
            retry_after_s: wait.as_secs().max(1),
        }
        .into());
    }
    if f.csrf.is_empty() || limits::cookie(&headers, LOGIN_CSRF_COOKIE).as_deref() != Some(&f.csrf)
    {
        return Ok(login_form(
            &st,
            StatusCode::FORBIDDEN,
            Some("Your login form expired; please try again."),
        ));
    }
    Ok(match auth::login(&st.db, &f.username, &f.password).await? {
        Some(t) => {
            auth::LOGIN_THROTTLE.succeeded(ip);
            let mut r = Redirect::to("/admin").into_response();
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&st, SESSION_COOKIE, &t.session, auth::SESSION_HOURS * 3600),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(
                    &st,
                    auth::DEVICE_COOKIE,
                    &t.device,
                    auth::DEVICE_DAYS * 86_400,
                ),
            );
            r
        }
        None => {
            auth::LOGIN_THROTTLE.failed(ip, &f.username, trusted);
            login_form(
                &st,
                StatusCode::UNAUTHORIZED,
                Some("Wrong user name or password."),
            )
        }
    })
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub csrf: String,
}

async fn logout(
    State(st): State<AppState>,
    admin: Admin,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    admin.checked(&f.csrf)?.logout(&st.db).await?;
    let mut r = Redirect::to("/admin/login").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&st, SESSION_COOKIE, "", 0));
    Ok(r)
}

async fn studies_page(State(st): State<AppState>, admin: Admin) -> AppResult<Response> {
    studies_view(&st, &admin.0, StatusCode::OK, None).await
}

async fn studies_view(
    st: &AppState,
    s: &Session,
    status: StatusCode,
    error: Option<String>,
) -> AppResult<Response> {
    let studies = study::list(&st.db).await?;
    let mut counts = Vec::with_capacity(studies.len());
    for x in &studies {
        counts.push(study::hit_counts(&st.db, x.id).await?);
    }
    let body = html! {
        @if let Some(m) = &error { p class="error" id="import-message" { (m) } }
        table id="studies" {
            tr { th { "Study" } th { "Link" } th { "State" } th { "HITs started" } th { "completed" } th { "excluded" } }
            @for (x, c) in studies.iter().zip(&counts) {
                tr {
                    td {
                        a href={ "/admin/studies/" (x.id) } { (x.name) }
                        @if x.synthetic { " " small { "(synthetic demo)" } }
                    }
                    td { code { "/s/" (x.slug) } }
                    td { (x.state.as_str()) }
                    td { (c.started) } td { (c.completed) } td { (c.excluded) }
                }
            }
        }
        h2 { "Import a study bundle" }
        p { "A .zip of a bundle folder with " code { "bundle.json" } " (see docs/bundle.md). The study is created as a draft." }
        form method="post" action="/admin/import" enctype="multipart/form-data" id="import-form" {
            (pages::csrf(s))
            input type="file" name="bundle" id="bundle-file" accept=".zip" required;
            button type="submit" id="import" { "Import" }
        }
    };
    let mut r = html_page(status, page("Studies", Some(s), body));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn import(
    State(st): State<AppState>,
    admin: Admin,
    mut mp: Multipart,
) -> AppResult<Response> {
    let mut csrf = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    let bad = |e: axum::extract::multipart::MultipartError| {
        AppError::BadRequest(format!("upload failed: {e}"))
    };
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        let fname = field.file_name().unwrap_or("upload.zip").to_string();
        let bytes = field.bytes().await.map_err(bad)?;
        match name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "bundle" => file = Some((fname, bytes.to_vec())),
            _ => {}
        }
    }
    let s = admin.checked(&csrf)?;
    let (name, bytes) =
        file.ok_or_else(|| AppError::BadRequest("no file in field \"bundle\"".into()))?;
    let result = match bundle::Source::zip(name.clone(), bytes) {
        Ok(mut src) => bundle::import(&st.db, &st.data_dir, &mut src).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(imp) => {
            tracing::info!(
                "admin {} imported {} as study {}",
                s.username,
                name,
                imp.slug
            );
            Ok(Redirect::to(&format!("/admin/studies/{}", imp.study_id)).into_response())
        }
        // A bundle that does not validate is the uploader's to fix: the page says why.
        Err(e) if !super::fault::is_infrastructure(&e) => {
            studies_view(
                &st,
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!("Import failed: {e:#}")),
            )
            .await
        }
        Err(e) => Err(AppError::from(e)),
    }
}

fn external_question(public_url: &str, slug: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <ExternalQuestion xmlns=\"http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd\">\n  \
         <ExternalURL>{}/s/{}</ExternalURL>\n  <FrameHeight>0</FrameHeight>\n</ExternalQuestion>\n",
        public_url.trim_end_matches('/'),
        slug
    )
}

async fn study_page(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    study_view(&st, &admin.0, id, StatusCode::OK, None).await
}

async fn load_study(st: &AppState, id: i64) -> AppResult<Study> {
    study::by_id(&st.db, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study {id}")))
}

async fn study_view(
    st: &AppState,
    s: &Session,
    id: i64,
    status: StatusCode,
    message: Option<String>,
) -> AppResult<Response> {
    let x = load_study(st, id).await?;
    let counts = study::hit_counts(&st.db, id).await?;
    let items = study::item_progress(&st.db, id).await?;
    let hits = study::hits(&st.db, id).await?;
    // Only a plan already computed for the current answers (by the results page): this page stays fast.
    let power = match super::power::cached_default(&st.db, &x).await? {
        Some(p) => p.status(),
        None => "not computed for the current answers yet; the results page computes it.".into(),
    };
    let public = st.public_url.trim_end_matches('/');
    let r = x.settings.repetitions;
    let full = items.iter().filter(|i| i.valid >= r).count();
    let body = html! {
        @if let Some(m) = &message { p class="error" id="study-message" { (m) } }
        @if x.synthetic {
            p class="notice" { "This study uses a synthetic demo bundle (procedurally generated images and distortions)." }
        }
        p { (x.description) }
        p { "State: " b id="state" { (x.state.as_str()) } }
        div class="actions" {
            @for to in [StudyState::Live, StudyState::Paused, StudyState::Closed] {
                @if x.state.can_become(to) {
                    @let label = if x.state == StudyState::Complete && to == StudyState::Live {
                        "Reopen (live)".to_string()
                    } else {
                        format!("Make {}", to.as_str())
                    };
                    (post_button(s, &format!("/admin/studies/{id}/state"), &[("state", to.as_str())],
                        Some(&format!("state-{}", to.as_str())), &label))
                }
            }
        }
        h2 { "Links" }
        ul {
            li { "Direct link: " a href={ (public) "/s/" (x.slug) } { (public) "/s/" (x.slug) } }
            li { "Preview as participant: " a id="preview-link" href={ "/s/" (x.slug) "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE" } { "preview" } }
            li { "Prolific study URL: " code { (public) "/s/" (x.slug) "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}" } }
            li { a href={ "/admin/studies/" (id) "/results" } id="results-page-link" { b { "Results" } ": JND with CIs, plots, significance, outliers, exports" } }
            li {
                a href={ "/admin/studies/" (id) "/export/answers-csv?include_excluded=1" } id="results-link" { "Download answers (CSV, valid and excluded HITs, flags in columns)" }
                ", "
                a href={ "/admin/studies/" (id) "/export/hits-csv" } id="hits-link" { "HITs with their quality flags (CSV)" }
            }
        }
        h3 { "MTurk ExternalQuestion" }
        pre id="external-question" { (external_question(public, &x.slug)) }
        h2 { "Progress" }
        p id="hit-counts" {
            "HITs started: " b id="hits-started" { (counts.started) }
            ", completed: " b id="hits-completed" { (counts.completed) }
            ", excluded: " b id="hits-excluded" { (counts.excluded) }
            ", abandoned: " b id="hits-abandoned" { (counts.abandoned) }
            ", workers: " (counts.workers)
        }
        p {
            "Design: " b id="design-filled" { (full) } " of " (items.len()) " pair-and-scene items have " (r) " valid answer(s); "
            "valid answers " b id="valid-answers" { (x.valid_answers) } " of " b id="target-answers" { (x.target_answers()) } ": "
            b id="remaining-answers" { (x.remaining_answers()) } " still needed, about "
            b id="remaining-hits" { (x.remaining_hits()) } " more HITs of " (x.settings.trials_per_hit) " trials (if every HIT is valid)."
        }
        p id="study-power" { "Power planning: " (power) " " a href={ "/admin/studies/" (id) "/results#power" } { "(details, other targets)" } }
        table id="progress-table" {
            tr { th { "Scene" } th { "Pair" } th { "Valid" } th { "In progress" } th { "Excluded" } th { "Abandoned" } th { "Held (load)" } }
            @for i in &items {
                tr {
                    td { (i.scene) } td { (i.condition_a) " vs " (i.condition_b) }
                    td class="valid" { (i.valid) } td { (i.in_progress) } td { (i.excluded) } td { (i.abandoned) } td { (i.load) }
                }
            }
        }
        h2 { "HITs" }
        table id="hits" {
            tr { th { "HIT" } th { "Platform" } th { "Assignment" } th { "Worker" } th { "Status" } th { "Answered" } th { "Flags" } th { "Excluded" } th {} }
            @for h in &hits {
                @let blocked = h.flags().contains(Flags::BLOCKED);
                tr {
                    td { (h.id) } td { (h.platform.as_str()) } td { (h.assignment_key) } td { (h.worker_key) }
                    td { (h.status_label()) } td { (h.answered) "/" (h.total) }
                    td { (h.flags().joined()) } td { @if h.excluded != 0 { "yes" } @else { "no" } }
                    td {
                        @if blocked {
                            (post_button(s, &format!("/admin/studies/{id}/unblock"), &[("worker", &h.worker_key)], None, "Unblock"))
                            " blocked"
                        } @else {
                            (post_button(s, &format!("/admin/studies/{id}/block"), &[("worker", &h.worker_key)], None, "Block worker"))
                        }
                    }
                }
            }
        }
        (settings_form(s, &x))
    };
    Ok(html_page(status, page(&x.name, Some(s), body)))
}

fn settings_form(s: &Session, x: &Study) -> Markup {
    let se = &x.settings;
    let q = &se.rules;
    html! {
        h2 { "Settings" }
        form method="post" action={ "/admin/studies/" (x.id) "/settings" } id="settings-form" class="settings" {
            (pages::csrf(s))
            label { "Question " input name="question" value=(se.question) size="50"; }
            label { "Trials per HIT " input name="trials_per_hit" type="number" min="1" value=(se.trials_per_hit); }
            label { "Attention checks per HIT " input name="checks_per_hit" type="number" min="0" max="2" value=(se.checks_per_hit); }
            label { "Answers wanted per pair and scene " input name="repetitions" type="number" min="1" value=(se.repetitions); }
            label { "Max HITs per worker " input name="max_hits_per_worker" type="number" min="1" value=(se.max_hits_per_worker); }
            label { "Abandoned-HIT timeout (s) " input name="hit_timeout_s" type="number" min="10" value=(se.hit_timeout_s); }
            label { "Approve excluded HITs for payment " input name="approve_excluded" type="checkbox" value="1" checked[se.approve_excluded]; }
            label { "Prolific completion URL " input name="prolific_completion_url" value=(se.prolific_completion_url) size="50"; }
            h3 { "Quality control" }
            label { "Minimum response time (ms, server clock) " input name="min_response_ms" type="number" min="0" value=(q.min_response_ms); }
            label { "Largest share of faster answers " input name="max_fast_share" type="number" step="any" min="0" max="1" value=(q.max_fast_share); }
            label { "Straight-lining significance (binomial test) " input name="straight_line_alpha" type="number" step="any" min="0" max="1" value=(q.straight_line_alpha); }
            label { "Outlier fence (dist_L) " input name="outlier_fence" type="number" step="any" min="0" value=(q.outlier_fence); }
            label { "Rules apply per "
                select name="qc_scope" {
                    option value="hit" selected[q.scope == QcScope::Hit] { "HIT" }
                    option value="worker" selected[q.scope == QcScope::Worker] { "worker (all of a worker's HITs)" }
                }
            }
            fieldset {
                legend { "Flags that exclude a HIT (blocked workers are always excluded)" }
                @for f in (Flags::all() - Flags::BLOCKED).iter() {
                    @let name = f.joined();
                    label class="flag" {
                        input type="checkbox" name={ "exclude_" (name) } value="1" checked[q.exclude.contains(f)];
                        " " (name) ": " (f.describe())
                    }
                }
            }
            button id="save-settings" { "Save settings" }
        }
    }
}

#[derive(Deserialize)]
struct StateForm {
    csrf: String,
    state: String,
}

async fn set_state(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Form(f): Form<StateForm>,
) -> AppResult<Response> {
    let s = admin.checked(&f.csrf)?;
    let result = match StudyState::parse(&f.state) {
        Ok(to) => study::set_state(&st.db, id, to).await,
        Err(e) => Err(AppError::BadRequest(e.to_string())),
    };
    after(&st, s, id, result).await
}

/// After a state-changing form: back to the study page, or the page again with the reason (422).
async fn after(st: &AppState, s: &Session, id: i64, result: AppResult<()>) -> AppResult<Response> {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/admin/studies/{id}")).into_response()),
        Err(e @ (AppError::Internal(_) | AppError::Unavailable(_))) => Err(e),
        Err(e) => {
            study_view(
                st,
                s,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(e.to_string()),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct SettingsForm {
    csrf: String,
    question: String,
    trials_per_hit: i64,
    checks_per_hit: i64,
    repetitions: i64,
    max_hits_per_worker: i64,
    hit_timeout_s: i64,
    #[serde(default)]
    approve_excluded: Option<String>,
    prolific_completion_url: String,
    min_response_ms: i64,
    max_fast_share: f64,
    straight_line_alpha: f64,
    outlier_fence: f64,
    qc_scope: String,
    // The "flags that exclude" checkboxes (present when checked).
    exclude_failed_check: Option<String>,
    exclude_too_fast: Option<String>,
    exclude_straight_line: Option<String>,
    exclude_outlier: Option<String>,
    exclude_unverified: Option<String>,
}

impl SettingsForm {
    fn settings(&self) -> Result<StudySettings, String> {
        let scope = self.qc_scope.parse().map_err(|_| {
            format!(
                "qc_scope: expected hit or worker, found \"{}\"",
                self.qc_scope
            )
        })?;
        let exclude = [
            (&self.exclude_failed_check, Flags::FAILED_CHECK),
            (&self.exclude_too_fast, Flags::TOO_FAST),
            (&self.exclude_straight_line, Flags::STRAIGHT_LINE),
            (&self.exclude_outlier, Flags::OUTLIER),
            (&self.exclude_unverified, Flags::UNVERIFIED),
        ]
        .into_iter()
        .filter(|(v, _)| v.is_some())
        .fold(Flags::empty(), |acc, (_, flag)| acc | flag);
        Ok(StudySettings {
            question: self.question.trim().to_string(),
            trials_per_hit: self.trials_per_hit,
            checks_per_hit: self.checks_per_hit,
            repetitions: self.repetitions,
            max_hits_per_worker: self.max_hits_per_worker,
            hit_timeout_s: self.hit_timeout_s,
            approve_excluded: self.approve_excluded.is_some(),
            prolific_completion_url: self.prolific_completion_url.trim().to_string(),
            rules: Rules {
                min_response_ms: self.min_response_ms,
                max_fast_share: self.max_fast_share,
                straight_line_alpha: self.straight_line_alpha,
                outlier_fence: self.outlier_fence,
                scope,
                exclude,
            },
        })
    }
}

async fn settings(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Form(f): Form<SettingsForm>,
) -> AppResult<Response> {
    let s = admin.checked(&f.csrf)?;
    let result = match f.settings() {
        Ok(new) => study::update_settings(&st.db, id, &new).await,
        Err(m) => Err(AppError::BadRequest(m)),
    };
    after(&st, s, id, result).await
}

#[derive(Deserialize)]
struct WorkerForm {
    csrf: String,
    worker: String,
}

async fn block(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Form(f): Form<WorkerForm>,
) -> AppResult<Response> {
    let s = admin.checked(&f.csrf)?;
    let result =
        study::block_worker(&st.db, id, &f.worker, &format!("blocked by {}", s.username)).await;
    after(&st, s, id, result).await
}

async fn unblock(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Form(f): Form<WorkerForm>,
) -> AppResult<Response> {
    let s = admin.checked(&f.csrf)?;
    let result = study::unblock_worker(&st.db, id, &f.worker).await;
    after(&st, s, id, result).await
}
