//! Admin pages: plain server-rendered HTML forms (no script needed), every state-changing form protected by
//! the session's CSRF token. Studies list + bundle upload, study page (settings, state, progress, HITs,
//! block worker, MTurk ExternalQuestion XML, preview link), CSV export of the raw trials.

use std::fmt::Write as _;

use axum::Router;
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::auth::{self, SESSION_COOKIE, Session};
use super::bundle;
use super::db;
use super::fault;
use super::study::{self, StudySettings, StudyState};

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

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn page(title: &str, user: Option<&Session>, body: &str) -> Html<String> {
    let nav = match user {
        Some(s) => format!(
            "<nav><a href=\"/admin\">Studies</a> <a href=\"/admin/tokens\">API tokens</a> <span class=\"user\">{}</span> \
             <form method=\"post\" action=\"/admin/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button id=\"logout\">Log out</button></form></nav>",
            esc(&s.username),
            esc(&s.csrf)
        ),
        None => String::new(),
    };
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - jndlab admin</title>\
         <link rel=\"stylesheet\" href=\"/pkg/app.css\"></head><body class=\"admin\">{nav}<main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    ))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(st: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if st.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is ascii")
}

/// A failed admin request: 503 when the database cannot take writes now, else 500 with a generic message
/// and an id (the details go to the log).
pub(crate) fn internal(e: anyhow::Error) -> Response {
    fault::AppError::from(e).into_response()
}

/// The logged-in admin, or a redirect to the login page.
pub(crate) async fn require(st: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    let token = cookie(headers, SESSION_COOKIE);
    match token {
        Some(t) => match auth::session(&st.db, &t).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(Redirect::to("/admin/login").into_response()),
            Err(e) => Err(internal(e)),
        },
        None => Err(Redirect::to("/admin/login").into_response()),
    }
}

/// For state-changing requests: the logged-in admin (401 without a session, no redirect: a POST is never
/// replayed after logging in).
async fn require_post(st: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    match require(st, headers).await {
        Err(r) if r.status().is_redirection() => Err((
            StatusCode::UNAUTHORIZED,
            "not logged in (or the session expired): log in at /admin/login and try again",
        )
            .into_response()),
        other => other,
    }
}

/// Like `require_post`, and checks the form's CSRF token.
pub(crate) async fn require_csrf(
    st: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Session, Response> {
    let s = require_post(st, headers).await?;
    if !s.csrf_ok(csrf) {
        return Err((
            StatusCode::FORBIDDEN,
            "invalid or missing CSRF token: reload the page and try again",
        )
            .into_response());
    }
    Ok(s)
}

async fn login_page(State(st): State<AppState>) -> Response {
    login_form(&st, None)
}

fn login_form(st: &AppState, error: Option<&str>) -> Response {
    let token = db::random_token(32);
    let err = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{err}<form method=\"post\" action=\"/admin/login\" id=\"login-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <label>User name <input name=\"username\" id=\"username\" autocomplete=\"username\" required></label>\
         <label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\" id=\"login\">Log in</button></form>"
    );
    let mut resp = page("Log in", None, &body).into_response();
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
) -> Response {
    let ip = super::limits::client_ip(&headers, peer.map(|p| p.0.0), &st.limiter.limits);
    let trusted = match cookie(&headers, auth::DEVICE_COOKIE) {
        Some(d) => match auth::is_trusted_device(&st.db, &f.username, &d).await {
            Ok(t) => t,
            Err(e) => return internal(e),
        },
        None => false,
    };
    if let Err(wait) = auth::LOGIN_THROTTLE.check(ip, &f.username, trusted) {
        return fault::AppError::TooManyRequests(fault::TooManyRequests {
            message: format!(
                "too many failed logins for \"{}\" or from this address: try again in {} s",
                f.username.chars().take(64).collect::<String>(),
                wait.as_secs().max(1)
            ),
            retry_after_s: wait.as_secs().max(1),
        })
        .into_response();
    }
    if cookie(&headers, LOGIN_CSRF_COOKIE).as_deref() != Some(f.csrf.as_str()) || f.csrf.is_empty()
    {
        let mut r = login_form(&st, Some("Your login form expired; please try again."));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    match auth::login(&st.db, &f.username, &f.password).await {
        Ok(Some(t)) => {
            auth::LOGIN_THROTTLE.succeeded(ip);
            let mut r = Redirect::to("/admin").into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&st, SESSION_COOKIE, &t.session, auth::SESSION_HOURS * 3600),
            );
            r.headers_mut().append(
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
        Ok(None) => {
            auth::LOGIN_THROTTLE.failed(ip, &f.username, trusted);
            let mut r = login_form(&st, Some("Wrong user name or password."));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match require_csrf(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = s.logout(&st.db).await {
        return internal(e);
    }
    let mut r = Redirect::to("/admin/login").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&st, SESSION_COOKIE, "", 0));
    r
}

async fn studies_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let s = match require(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    studies_view(&st, &s, None).await
}

async fn studies_view(st: &AppState, s: &Session, message: Option<(bool, String)>) -> Response {
    let studies = match study::list(&st.db).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let mut body = String::new();
    if let Some((ok, m)) = message {
        let _ = write!(
            body,
            "<p class=\"{}\" id=\"import-message\">{}</p>",
            if ok { "ok" } else { "error" },
            esc(&m)
        );
    }
    body.push_str("<table id=\"studies\"><tr><th>Study</th><th>Link</th><th>State</th><th>HITs started</th><th>completed</th><th>excluded</th></tr>");
    for x in &studies {
        let c = study::hit_counts(&st.db, x.id).await.unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td><a href=\"/admin/studies/{id}\">{name}</a>{syn}</td><td><code>/s/{slug}</code></td><td>{state}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.started,
            c.completed,
            c.excluded,
            id = x.id,
            name = esc(&x.name),
            syn = if x.synthetic {
                " <small>(synthetic demo)</small>"
            } else {
                ""
            },
            slug = esc(&x.slug),
            state = x.state.as_str()
        );
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<h2>Import a study bundle</h2><p>A .zip of a bundle folder with <code>bundle.json</code> (see docs/bundle.md). \
         The study is created as a draft.</p>\
         <form method=\"post\" action=\"/admin/import\" enctype=\"multipart/form-data\" id=\"import-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"file\" name=\"bundle\" id=\"bundle-file\" accept=\".zip\" required>\
         <button type=\"submit\" id=\"import\">Import</button></form>",
        esc(&s.csrf)
    );
    page("Studies", Some(s), &body).into_response()
}

async fn import(State(st): State<AppState>, headers: HeaderMap, mut mp: Multipart) -> Response {
    let s = match require_post(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut csrf = String::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                let fname = field.file_name().unwrap_or("upload.zip").to_string();
                match field.bytes().await {
                    Ok(b) if name == "csrf" => csrf = String::from_utf8_lossy(&b).into_owned(),
                    Ok(b) if name == "bundle" => file = Some((fname, b.to_vec())),
                    Ok(_) => {}
                    Err(e) => {
                        return (StatusCode::BAD_REQUEST, format!("upload failed: {e}"))
                            .into_response();
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("upload failed: {e}")).into_response();
            }
        }
    }
    if !s.csrf_ok(&csrf) {
        return (StatusCode::FORBIDDEN, "invalid or missing CSRF token").into_response();
    }
    let Some((name, bytes)) = file else {
        return (StatusCode::BAD_REQUEST, "no file in field \"bundle\"").into_response();
    };
    let result = match bundle::Source::zip(name.clone(), bytes) {
        Ok(mut src) => bundle::import(&st.db, &st.data_dir, &mut src).await,
        Err(e) => Err(e),
    };
    let mut r = match result {
        Ok(imp) => {
            tracing::info!(
                "admin {} imported {} as study {}",
                s.username,
                name,
                imp.slug
            );
            Redirect::to(&format!("/admin/studies/{}", imp.study_id)).into_response()
        }
        Err(e) => {
            let mut r = studies_view(&st, &s, Some((false, format!("Import failed: {e:#}")))).await;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
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
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let s = match require(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match study_view(&st, &s, id, None).await {
        Ok(r) => r,
        Err(e) => internal(e),
    }
}

async fn study_view(
    st: &AppState,
    s: &Session,
    id: i64,
    message: Option<String>,
) -> anyhow::Result<Response> {
    let Some(x) = study::by_id(&st.db, id).await? else {
        return Ok((StatusCode::NOT_FOUND, format!("no study {id}")).into_response());
    };
    let counts = study::hit_counts(&st.db, id).await?;
    let items = study::item_progress(&st.db, id).await?;
    let hits = study::hits(&st.db, id).await?;
    let csrf = esc(&s.csrf);
    let public = st.public_url.trim_end_matches('/');
    let mut b = String::new();
    if let Some(m) = message {
        let _ = write!(b, "<p class=\"error\" id=\"study-message\">{}</p>", esc(&m));
    }
    if x.synthetic {
        b.push_str("<p class=\"notice\">This study uses a synthetic demo bundle (procedurally generated images and distortions).</p>");
    }
    let _ = write!(
        b,
        "<p>{desc}</p><p>State: <b id=\"state\">{state}</b></p><div class=\"actions\">",
        desc = esc(&x.description),
        state = x.state.as_str()
    );
    for to in [StudyState::Live, StudyState::Paused, StudyState::Closed] {
        if x.state.can_become(to) {
            let label = if x.state == StudyState::Complete && to == StudyState::Live {
                "Reopen (live)".to_string()
            } else {
                format!("Make {}", to.as_str())
            };
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/admin/studies/{id}/state\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"state\" value=\"{s}\"><button id=\"state-{s}\">{label}</button></form>",
                s = to.as_str()
            );
        }
    }
    let _ = write!(
        b,
        "</div><h2>Links</h2><ul><li>Direct link: <a href=\"{public}/s/{slug}\">{public}/s/{slug}</a></li>\
         <li>Preview as participant: <a id=\"preview-link\" href=\"/s/{slug}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE\">preview</a></li>\
         <li>Prolific study URL: <code>{public}/s/{slug}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&amp;STUDY_ID={{{{%STUDY_ID%}}}}&amp;SESSION_ID={{{{%SESSION_ID%}}}}</code></li>\
         <li><a href=\"/admin/studies/{id}/results\" id=\"results-page-link\"><b>Results</b>: JND with CIs, plots, significance, outliers, exports</a></li>\
         <li><a href=\"/admin/studies/{id}/export/answers-csv?include_excluded=1\" id=\"results-link\">Download answers (CSV, valid and excluded HITs, flags in columns)</a>, \
         <a href=\"/admin/studies/{id}/export/hits-csv\" id=\"hits-link\">HITs with their quality flags (CSV)</a></li></ul>\
         <h3>MTurk ExternalQuestion</h3><pre id=\"external-question\">{xml}</pre>",
        slug = esc(&x.slug),
        xml = esc(&external_question(public, &x.slug))
    );
    let r = x.settings.repetitions;
    let full = items.iter().filter(|i| i.valid >= r).count();
    // Only a plan already computed for the current answers (by the results page): this page stays fast.
    let power = match super::power::cached_default(&st.db, &x).await? {
        Some(p) => esc(&p.status()),
        None => {
            "not computed for the current answers yet; the results page computes it.".to_string()
        }
    };
    let _ = write!(
        b,
        "<h2>Progress</h2><p id=\"hit-counts\">HITs started: <b id=\"hits-started\">{}</b>, completed: <b id=\"hits-completed\">{}</b>, \
         excluded: <b id=\"hits-excluded\">{}</b>, abandoned: <b id=\"hits-abandoned\">{}</b>, workers: {}</p>\
         <p>Design: <b id=\"design-filled\">{full}</b> of {} pair-and-scene items have {r} valid answer(s); \
         valid answers <b id=\"valid-answers\">{}</b> of <b id=\"target-answers\">{}</b>: \
         <b id=\"remaining-answers\">{}</b> still needed, about <b id=\"remaining-hits\">{}</b> more HITs of {} trials \
         (if every HIT is valid).</p>\
         <p id=\"study-power\">Power planning: {power} <a href=\"/admin/studies/{id}/results#power\">(details, other targets)</a></p>\
         <table id=\"progress-table\"><tr><th>Scene</th><th>Pair</th><th>Valid</th><th>In progress</th><th>Excluded</th><th>Abandoned</th><th>Held (load)</th></tr>",
        counts.started,
        counts.completed,
        counts.excluded,
        counts.abandoned,
        counts.workers,
        items.len(),
        x.valid_answers,
        x.target_answers(),
        x.remaining_answers(),
        x.remaining_hits(),
        x.settings.trials_per_hit,
    );
    for i in &items {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{} vs {}</td><td class=\"valid\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.scene),
            esc(&i.condition_a),
            esc(&i.condition_b),
            i.valid,
            i.in_progress,
            i.excluded,
            i.abandoned,
            i.load
        );
    }
    b.push_str("</table><h2>HITs</h2><table id=\"hits\"><tr><th>HIT</th><th>Platform</th><th>Assignment</th><th>Worker</th><th>Status</th><th>Answered</th><th>Flags</th><th>Excluded</th><th></th></tr>");
    for h in &hits {
        let blocked = h.flags().contains(super::quality::Flags::BLOCKED);
        let action = if blocked {
            format!(
                "<form method=\"post\" action=\"/admin/studies/{id}/unblock\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"worker\" value=\"{w}\"><button>Unblock</button></form> blocked",
                w = esc(&h.worker_key)
            )
        } else {
            format!(
                "<form method=\"post\" action=\"/admin/studies/{id}/block\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"worker\" value=\"{w}\"><button class=\"block\">Block worker</button></form>",
                w = esc(&h.worker_key)
            )
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            h.id,
            esc(&h.platform),
            esc(&h.assignment_key),
            esc(&h.worker_key),
            esc(h.status_label()),
            h.answered,
            h.total,
            esc(&h.flags().joined()),
            if h.excluded != 0 { "yes" } else { "no" }
        );
    }
    b.push_str("</table>");
    let se = &x.settings;
    let q = &se.rules;
    let mut excl = String::new();
    for f in super::quality::Flags::all().iter() {
        if f == super::quality::Flags::BLOCKED {
            continue;
        }
        let name = f.names().join("");
        let _ = write!(
            excl,
            "<label class=\"flag\"><input type=\"checkbox\" name=\"exclude_{name}\" value=\"1\"{}> {name}: {}</label>",
            if q.exclude.contains(f) {
                " checked"
            } else {
                ""
            },
            esc(f.describe())
        );
    }
    let _ = write!(
        b,
        "<h2>Settings</h2><form method=\"post\" action=\"/admin/studies/{id}/settings\" id=\"settings-form\" class=\"settings\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Question <input name=\"question\" value=\"{qtext}\" size=\"50\"></label>\
         <label>Trials per HIT <input name=\"trials_per_hit\" type=\"number\" min=\"1\" value=\"{}\"></label>\
         <label>Attention checks per HIT <input name=\"checks_per_hit\" type=\"number\" min=\"0\" max=\"2\" value=\"{}\"></label>\
         <label>Answers wanted per pair and scene <input name=\"repetitions\" type=\"number\" min=\"1\" value=\"{}\"></label>\
         <label>Max HITs per worker <input name=\"max_hits_per_worker\" type=\"number\" min=\"1\" value=\"{}\"></label>\
         <label>Abandoned-HIT timeout (s) <input name=\"hit_timeout_s\" type=\"number\" min=\"10\" value=\"{}\"></label>\
         <label>Approve excluded HITs for payment <input name=\"approve_excluded\" type=\"checkbox\" value=\"1\"{}></label>\
         <label>Prolific completion URL <input name=\"prolific_completion_url\" value=\"{}\" size=\"50\"></label>\
         <h3>Quality control</h3>\
         <label>Minimum response time (ms, server clock) <input name=\"min_response_ms\" type=\"number\" min=\"0\" value=\"{}\"></label>\
         <label>Largest share of faster answers <input name=\"max_fast_share\" type=\"number\" step=\"any\" min=\"0\" max=\"1\" value=\"{}\"></label>\
         <label>Straight-lining significance (binomial test) <input name=\"straight_line_alpha\" type=\"number\" step=\"any\" min=\"0\" max=\"1\" value=\"{}\"></label>\
         <label>Outlier fence (dist_L) <input name=\"outlier_fence\" type=\"number\" step=\"any\" min=\"0\" value=\"{}\"></label>\
         <label>Rules apply per <select name=\"qc_scope\"><option value=\"hit\"{}>HIT</option><option value=\"worker\"{}>worker (all of a worker's HITs)</option></select></label>\
         <fieldset><legend>Flags that exclude a HIT (blocked workers are always excluded)</legend>{excl}</fieldset>\
         <button id=\"save-settings\">Save settings</button></form>",
        se.trials_per_hit,
        se.checks_per_hit,
        se.repetitions,
        se.max_hits_per_worker,
        se.hit_timeout_s,
        if se.approve_excluded { " checked" } else { "" },
        esc(&se.prolific_completion_url),
        q.min_response_ms,
        q.max_fast_share,
        q.straight_line_alpha,
        q.outlier_fence,
        if q.scope == super::quality::QcScope::Hit {
            " selected"
        } else {
            ""
        },
        if q.scope == super::quality::QcScope::Worker {
            " selected"
        } else {
            ""
        },
        qtext = esc(&se.question)
    );
    Ok(page(&x.name, Some(s), &b).into_response())
}

#[derive(Deserialize)]
struct StateForm {
    csrf: String,
    state: String,
}

async fn set_state(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<StateForm>,
) -> Response {
    let s = match require_csrf(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = match StudyState::parse(&f.state) {
        Ok(to) => study::set_state(&st.db, id, to).await,
        Err(e) => Err(e),
    };
    after(&st, &s, id, result).await
}

async fn after(st: &AppState, s: &Session, id: i64, result: anyhow::Result<()>) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/admin/studies/{id}")).into_response(),
        Err(e) => match study_view(st, s, id, Some(format!("{e:#}"))).await {
            Ok(mut r) => {
                *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                r
            }
            Err(e) => internal(e),
        },
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

async fn settings(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<SettingsForm>,
) -> Response {
    let s = match require_csrf(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let scope = f.qc_scope.parse().map_err(|_| {
            anyhow::anyhow!("qc_scope: expected hit or worker, found \"{}\"", f.qc_scope)
        })?;
        use super::quality::Flags;
        let exclude = [
            (&f.exclude_failed_check, Flags::FAILED_CHECK),
            (&f.exclude_too_fast, Flags::TOO_FAST),
            (&f.exclude_straight_line, Flags::STRAIGHT_LINE),
            (&f.exclude_outlier, Flags::OUTLIER),
            (&f.exclude_unverified, Flags::UNVERIFIED),
        ]
        .into_iter()
        .filter(|(v, _)| v.is_some())
        .fold(Flags::empty(), |acc, (_, flag)| acc | flag);
        let new = StudySettings {
            question: f.question.trim().to_string(),
            trials_per_hit: f.trials_per_hit,
            checks_per_hit: f.checks_per_hit,
            repetitions: f.repetitions,
            max_hits_per_worker: f.max_hits_per_worker,
            hit_timeout_s: f.hit_timeout_s,
            approve_excluded: f.approve_excluded.is_some(),
            prolific_completion_url: f.prolific_completion_url.trim().to_string(),
            rules: super::quality::Rules {
                min_response_ms: f.min_response_ms,
                max_fast_share: f.max_fast_share,
                straight_line_alpha: f.straight_line_alpha,
                outlier_fence: f.outlier_fence,
                scope,
                exclude,
            },
        };
        study::update_settings(&st.db, id, &new).await
    }
    .await;
    after(&st, &s, id, result).await
}

#[derive(Deserialize)]
struct WorkerForm {
    csrf: String,
    worker: String,
}

async fn block(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<WorkerForm>,
) -> Response {
    let s = match require_csrf(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result =
        study::block_worker(&st.db, id, &f.worker, &format!("blocked by {}", s.username)).await;
    after(&st, &s, id, result).await
}

async fn unblock(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<WorkerForm>,
) -> Response {
    let s = match require_csrf(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = study::unblock_worker(&st.db, id, &f.worker).await;
    after(&st, &s, id, result).await
}
