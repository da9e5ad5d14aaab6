//! HTTP side of the results: the admin results page (tables + inline SVG plots), plot and export
//! downloads, the API-token admin page, and the token-authenticated results JSON API.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::admin::{esc, internal, page, require, require_csrf};
use super::export::{self, FORMATS, Format};
use super::plots::{self, PLOTS, Plot};
use super::power::{self, PowerReport};
use super::results::{self, MAX_WEB_REPLICATES, ObserverUnit, ResultsOptions, StudyResults};
use super::study::{self, Study};
use super::tokens;
use scaling::power::WidthSummary;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/studies/{id}/results", get(results_page))
        .route("/admin/studies/{id}/plots/{name}", get(plot))
        .route("/admin/studies/{id}/export/{format}", get(download))
        .route("/admin/tokens", get(tokens_page).post(create_token))
        .route("/admin/tokens/{id}/revoke", post(revoke_token))
        .route("/api/studies/{id}/results", get(api_results))
}

/// The options of the results page, from its query string (all optional).
#[derive(Debug, Default, Deserialize)]
pub struct ResultsQuery {
    /// `hit` (default) or `worker`.
    observer: Option<String>,
    /// `1`/`true`/`on` to use the answers of excluded HITs too.
    include_excluded: Option<String>,
    replicates: Option<usize>,
    seed: Option<u64>,
    /// Target mean width (JND) of the 95% CIs for the power planning (default 0.5).
    target: Option<String>,
    /// What the target applies to: `mean` (default) or `max` width over conditions.
    width: Option<String>,
}

impl ResultsQuery {
    /// The options, or the message of a 400 response.
    fn options(&self) -> Result<ResultsOptions, String> {
        let mut o = ResultsOptions::default();
        if let Some(s) = self.observer.as_deref().filter(|s| !s.is_empty()) {
            o.observer = ObserverUnit::parse(s).map_err(|e| e.to_string())?;
        }
        o.include_excluded = match self.include_excluded.as_deref() {
            None | Some("") | Some("0") | Some("false") => false,
            Some("1") | Some("true") | Some("on") => true,
            Some(x) => {
                return Err(format!("include_excluded: expected 0 or 1, found \"{x}\""));
            }
        };
        if let Some(r) = self.replicates {
            if r > MAX_WEB_REPLICATES {
                return Err(format!(
                    "replicates: at most {MAX_WEB_REPLICATES} on the web (use `jndlab-app export` for more), found {r}"
                ));
            }
            o.replicates = r;
        }
        if let Some(s) = self.seed {
            o.seed = s;
        }
        Ok(o)
    }

    /// The power planning's target, or the message of a 400 response.
    fn target(&self) -> Result<(f64, WidthSummary), String> {
        Ok((
            power::parse_target(self.target.as_deref())?,
            power::parse_summary(self.width.as_deref())?,
        ))
    }
}

/// Rows of the outlier table shown (worst first; all of them are in the JSON export).
const OUTLIER_ROWS: usize = 50;

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// The query string that reproduces `o` (for links).
fn query_string(o: &ResultsOptions) -> String {
    format!(
        "observer={}&include_excluded={}&replicates={}&seed={}",
        o.observer.as_str(),
        u8::from(o.include_excluded),
        o.replicates,
        o.seed
    )
}

fn no_progress() -> Arc<dyn Fn() + Send + Sync> {
    Arc::new(|| {})
}

async fn load(
    st: &AppState,
    id: i64,
    o: &ResultsOptions,
) -> Result<(Study, StudyResults), Response> {
    let s = match study::by_id(&st.db, id).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err((StatusCode::NOT_FOUND, format!("no study {id}")).into_response()),
        Err(e) => return Err(internal(e)),
    };
    let r = results::results(&st.db, id, o, no_progress())
        .await
        .map_err(internal)?;
    Ok((s, r))
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

fn pooled_table(b: &mut String, r: &StudyResults) {
    let Some(p) = &r.pooled else {
        b.push_str("<p id=\"no-scores\">No scores yet.</p>");
        return;
    };
    let mut order: Vec<usize> = (0..p.conditions.len()).collect();
    order.sort_by(|&a, &c| p.jnd[c].total_cmp(&p.jnd[a]));
    let _ = write!(
        b,
        "<table id=\"jnd-table\"><tr><th>Condition</th><th>JND</th><th>95% CI</th><th>Mean PSNR (dB)</th></tr>"
    );
    for i in order {
        let ci = match (&p.ci_low, &p.ci_high) {
            (Some(l), Some(h)) => format!("[{}, {}]", f2(l[i]), f2(h[i])),
            _ => "-".into(),
        };
        let psnr = r
            .mean_psnr
            .get(i)
            .copied()
            .flatten()
            .map(f2)
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            b,
            "<tr class=\"jnd-row\" data-condition=\"{c}\" data-jnd=\"{j}\"><td>{c}</td><td>{jf}</td><td>{ci}</td><td>{psnr}</td></tr>",
            c = esc(&p.conditions[i]),
            j = p.jnd[i],
            jf = f2(p.jnd[i])
        );
    }
    let _ = write!(
        b,
        "</table><p>{} observers, {} answers, {} bootstrap replicates used.</p>",
        p.observers, p.answers, p.replicates_used
    );
}

fn scene_table(b: &mut String, r: &StudyResults) {
    let Some(p) = &r.pooled else { return };
    b.push_str("<h2>Per scene</h2><table id=\"scene-table\"><tr><th>Condition</th>");
    for s in &r.per_scene {
        let _ = write!(b, "<th>{}</th>", esc(&s.scene));
    }
    b.push_str("</tr>");
    for c in &p.conditions {
        let _ = write!(b, "<tr><td>{}</td>", esc(c));
        for s in &r.per_scene {
            let cell = s.result.as_ref().and_then(|x| {
                let i = x.conditions.iter().position(|k| k == c)?;
                Some(match (&x.ci_low, &x.ci_high) {
                    (Some(l), Some(h)) => format!("{} [{}, {}]", f2(x.jnd[i]), f2(l[i]), f2(h[i])),
                    _ => f2(x.jnd[i]),
                })
            });
            let _ = write!(b, "<td>{}</td>", cell.unwrap_or_else(|| "-".into()));
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
    for s in r.per_scene.iter().filter(|s| !s.warnings.is_empty()) {
        let _ = write!(
            b,
            "<p class=\"notice\">Scene {}: {}</p>",
            esc(&s.scene),
            esc(&s.warnings.join("; "))
        );
    }
}

fn matrix_table(b: &mut String, id: &str, names: &[String], cell: impl Fn(usize, usize) -> String) {
    let _ = write!(b, "<table id=\"{id}\"><tr><th></th>");
    for n in names {
        let _ = write!(b, "<th>{}</th>", esc(n));
    }
    b.push_str("</tr>");
    for (i, n) in names.iter().enumerate() {
        let _ = write!(b, "<tr><th>{}</th>", esc(n));
        for j in 0..names.len() {
            let _ = write!(b, "<td>{}</td>", cell(i, j));
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
}

fn power_section(b: &mut String, x: &Study, r: &StudyResults, p: &PowerReport) {
    let o = &r.options;
    let _ = write!(
        b,
        "<h2 id=\"power\">Power planning</h2>\
         <p>How many more comparisons until the width of the pooled 95% CIs (the mean over conditions, or the widest) reaches the target: \
         synthetic studies drawn from the fitted scores (Thurstone case V) over the study's pairs, \
         {} per candidate total, scaled like the data; the width is the 2.5-97.5 percentile spread of \
         each condition's score. It assumes observers agree with the model: with disagreeing observers \
         the bootstrap CIs are wider than simulated.</p>\
         <form method=\"get\" action=\"/admin/studies/{id}/results#power\" id=\"power-form\" class=\"settings\">\
         <input type=\"hidden\" name=\"observer\" value=\"{}\">\
         <input type=\"hidden\" name=\"include_excluded\" value=\"{}\">\
         <input type=\"hidden\" name=\"replicates\" value=\"{}\">\
         <input type=\"hidden\" name=\"seed\" value=\"{}\">\
         <label>Target CI width (JND) <input type=\"number\" name=\"target\" id=\"power-target\" min=\"0.01\" \
         max=\"{}\" step=\"0.01\" value=\"{}\"></label> \
         <label>for the <select name=\"width\" id=\"power-width\"><option value=\"mean\"{}>mean</option>\
         <option value=\"max\"{}>widest</option></select> CI</label> <button id=\"apply-target\">Estimate</button></form>",
        power::REPLICATES,
        o.observer.as_str(),
        u8::from(o.include_excluded),
        o.replicates,
        o.seed,
        power::MAX_TARGET,
        p.target,
        if p.summary == WidthSummary::Mean {
            " selected"
        } else {
            ""
        },
        if p.summary == WidthSummary::Max {
            " selected"
        } else {
            ""
        },
        id = x.id
    );
    let Some(plan) = &p.plan else {
        let _ = write!(
            b,
            "<p class=\"notice\" id=\"power-status\">{}</p>",
            esc(&p.status())
        );
        return;
    };
    let opt = |v: Option<f64>| v.map(f2).unwrap_or_else(|| "-".into());
    let hits = p.additional_hits.unwrap_or(0);
    let _ = write!(
        b,
        "<table id=\"power-table\"><tr><th>{w} CI width now (bootstrap)</th><th>{w} CI width now (simulated)</th>\
         <th>Target</th><th>Comparisons so far</th><th>Comparisons needed</th><th>Additional comparisons</th>\
         <th>Additional HITs ({} pair trials each)</th></tr>\
         <tr><td id=\"power-bootstrap-width\">{}</td><td id=\"power-current-width\">{}</td><td id=\"power-target-value\">{}</td>\
         <td id=\"power-current\">{}</td><td id=\"power-needed\">{}</td><td id=\"power-additional\">{}</td>\
         <td id=\"power-hits\">{}</td></tr></table>",
        p.trials_per_hit,
        opt(p.bootstrap_width),
        opt(plan.current_width),
        f2(p.target),
        plan.current_comparisons,
        plan.needed_comparisons,
        plan.additional_comparisons,
        hits,
        w = match p.summary {
            WidthSummary::Mean => "Mean",
            WidthSummary::Max => "Widest",
        }
    );
    let status = p.status();
    let _ = write!(b, "<p id=\"power-status\">{}</p>", esc(&status));
    for n in &p.notes {
        let _ = write!(b, "<p class=\"notice\">{}</p>", esc(n));
    }
    match power::svg(p) {
        Ok(Some(svg)) => {
            let _ = write!(b, "<figure class=\"plot\" id=\"plot-power\">{svg}</figure>");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = write!(b, "<p class=\"error\">{}</p>", esc(&format!("{e:#}")));
        }
    }
}

fn results_body(
    st: &AppState,
    x: &Study,
    r: &StudyResults,
    p: &PowerReport,
    times: &[(i64, bool)],
) -> String {
    let o = &r.options;
    let q = esc(&query_string(o));
    let id = x.id;
    let mut b = String::new();
    let _ = write!(
        b,
        "<p><a href=\"/admin/studies/{id}\">Back to the study</a></p>\
         <form method=\"get\" action=\"/admin/studies/{id}/results\" id=\"results-options\" class=\"settings\">\
         <label>Observer <select name=\"observer\"><option value=\"hit\"{}>HIT</option><option value=\"worker\"{}>worker</option></select></label>\
         <label>Include excluded HITs <input type=\"checkbox\" name=\"include_excluded\" value=\"1\"{}></label>\
         <label>Bootstrap replicates <input type=\"number\" name=\"replicates\" min=\"0\" max=\"{MAX_WEB_REPLICATES}\" value=\"{}\"></label>\
         <label>Seed <input type=\"number\" name=\"seed\" min=\"0\" value=\"{}\"></label>\
         <button id=\"apply-options\">Recompute</button></form>",
        if o.observer == ObserverUnit::Hit {
            " selected"
        } else {
            ""
        },
        if o.observer == ObserverUnit::Worker {
            " selected"
        } else {
            ""
        },
        if o.include_excluded { " checked" } else { "" },
        o.replicates,
        o.seed
    );
    let c = &r.counts;
    let _ = write!(
        b,
        "<h2>Counts</h2><table id=\"counts\"><tr><th>Answers</th><th>Valid</th><th>Used</th>\
         <th>Left out: excluded</th><th>in progress</th><th>abandoned</th><th>Valid but flagged</th>\
         <th>HITs</th><th>Excluded HITs</th><th>Workers</th><th>Observers used</th></tr>\
         <tr><td id=\"answers-total\">{}</td><td id=\"answers-valid\">{}</td><td id=\"answers-used\">{}</td>\
         <td id=\"answers-excluded\">{}</td><td id=\"answers-in-progress\">{}</td><td id=\"answers-abandoned\">{}</td>\
         <td id=\"answers-flagged-kept\">{}</td><td>{}</td><td id=\"hits-excluded\">{}</td><td>{}</td>\
         <td id=\"observers-used\">{}</td></tr></table>",
        c.answers_total,
        c.answers_valid,
        c.answers_used,
        c.answers_excluded,
        c.answers_in_progress,
        c.answers_abandoned,
        c.answers_flagged_kept,
        c.hits,
        c.hits_excluded,
        c.workers,
        c.observers_used
    );
    if !c.excluded_by.is_empty() {
        b.push_str(
            "<table id=\"excluded-by\"><tr><th>Excluded answers by flag</th><th>Answers</th></tr>",
        );
        for (flag, n) in &c.excluded_by {
            let _ = write!(
                b,
                "<tr><td>{}</td><td id=\"excluded-{}\">{n}</td></tr>",
                esc(flag),
                esc(flag)
            );
        }
        b.push_str("</table>");
    }
    for w in &r.warnings {
        let _ = write!(b, "<p class=\"notice\">{}</p>", esc(w));
    }
    b.push_str("<h2>JND per condition (pooled over scenes)</h2>");
    pooled_table(&mut b, r);
    for p in PLOTS {
        match plots::svg(p, r, times) {
            Ok(Some(svg)) => {
                let _ = write!(
                    b,
                    "<figure class=\"plot\" id=\"plot-{name}\">{svg}<figcaption><a href=\"/admin/studies/{id}/plots/{name}?{q}\" download>Download {name}</a></figcaption></figure>",
                    name = p.file_name()
                );
            }
            Ok(None) => {}
            Err(e) => {
                let _ = write!(b, "<p class=\"error\">{}</p>", esc(&format!("{e:#}")));
            }
        }
    }
    power_section(&mut b, x, r, p);
    scene_table(&mut b, r);
    if let (Some(p), Some(s)) = (&r.pooled, &r.significance) {
        let _ = write!(
            b,
            "<h2>Significance</h2><p>Two-tailed p-values of a z-test on the bootstrap covariance; <b>bold</b>: p &lt; {}.</p>",
            s.alpha
        );
        matrix_table(&mut b, "significance", &p.conditions, |i, j| {
            if i == j {
                "-".into()
            } else if s.significant[i][j] {
                format!("<b class=\"significant\">{:.3}</b>", s.p_value[i][j])
            } else {
                format!("{:.3}", s.p_value[i][j])
            }
        });
    }
    if let Some(p) = &r.pooled {
        b.push_str("<h2>Comparison counts</h2><p>Row i, column j: times i was chosen over j.</p>");
        matrix_table(&mut b, "count-matrix", &p.conditions, |i, j| {
            if i == j {
                "-".into()
            } else {
                format!("{}", r.count_matrix[i][j])
            }
        });
    }
    if !r.outliers.is_empty() {
        let _ = write!(
            b,
            "<h2>Observer outliers</h2><p>pwcmp's screen of the valid answers, observer = {}: leave-one-out log10 \
             likelihood per observer; dist_L &ge; {} flags an outlier ({} by this study's rules).</p>\
             <table id=\"outliers\"><tr><th>Observer</th><th>log10 L</th><th>dist_L</th><th>Outlier</th></tr>",
            super::results::screen_unit(&r.rules).as_str(),
            r.rules.outlier_fence,
            if r.rules.exclude.contains(super::quality::Flags::OUTLIER) {
                "excluded"
            } else {
                "flagged, kept"
            }
        );
        let mut rows_sorted: Vec<_> = r.outliers.iter().collect();
        rows_sorted.sort_by(|a, c| {
            c.dist_l
                .unwrap_or(f64::INFINITY)
                .total_cmp(&a.dist_l.unwrap_or(f64::INFINITY))
        });
        let hidden = rows_sorted.len().saturating_sub(OUTLIER_ROWS);
        for o in rows_sorted.into_iter().take(OUTLIER_ROWS) {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                esc(&o.observer),
                o.log_likelihood,
                o.dist_l.map(f2).unwrap_or_else(|| "-".into()),
                if o.outlier { "yes" } else { "no" }
            );
        }
        b.push_str("</table>");
        if hidden > 0 {
            let _ = write!(
                b,
                "<p>{hidden} more observers with smaller dist_L are in the JSON export.</p>"
            );
        }
    }
    b.push_str("<h2>Downloads</h2><ul id=\"downloads\">");
    for f in FORMATS {
        let _ = write!(
            b,
            "<li><a href=\"/admin/studies/{id}/export/{fmt}?{q}\" id=\"export-{fmt}\">{file}</a></li>",
            fmt = f.as_str(),
            file = esc(&f.file_name(&x.slug))
        );
    }
    let public = st.public_url.trim_end_matches('/');
    let _ = write!(
        b,
        "</ul><h2>API</h2><p>For scripts: <code>curl -H \"Authorization: Bearer TOKEN\" \"{}/api/studies/{id}/results?{}\"</code> \
         returns this page's data as JSON. <a href=\"/admin/tokens\">Manage API tokens</a>.</p>\
         <p><small>Computed {} (data version {}).</small></p>",
        esc(public),
        q,
        r.computed_at_ms,
        esc(&r.data_version)
    );
    b
}

async fn results_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<ResultsQuery>,
) -> Response {
    let s = match require(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let o = match q.options() {
        Ok(o) => o,
        Err(m) => return bad_request(m),
    };
    let (target, summary) = match q.target() {
        Ok(t) => t,
        Err(m) => return bad_request(m),
    };
    let (x, r) = match load(&st, id, &o).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = match power::power(&st.db, &x, &r, target, summary).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let times = match results::answer_times(&st.db, id).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let body = results_body(&st, &x, &r, &p, &times);
    page(&format!("Results: {}", x.name), Some(&s), &body).into_response()
}

fn attachment(content_type: &'static str, file: &str, bytes: Vec<u8>) -> Response {
    let mut r = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

async fn plot(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(i64, String)>,
    Query(q): Query<ResultsQuery>,
) -> Response {
    if let Err(r) = require(&st, &headers).await {
        return r;
    }
    let Some(p) = Plot::parse(&name) else {
        let names: Vec<_> = PLOTS.iter().map(|p| p.file_name()).collect();
        return (
            StatusCode::NOT_FOUND,
            format!("no plot \"{name}\" (expected one of {})", names.join(", ")),
        )
            .into_response();
    };
    let o = match q.options() {
        Ok(o) => o,
        Err(m) => return bad_request(m),
    };
    let (x, r) = match load(&st, id, &o).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let times = if p == Plot::AnswersOverTime {
        match results::answer_times(&st.db, id).await {
            Ok(v) => v,
            Err(e) => return internal(e),
        }
    } else {
        Vec::new()
    };
    match plots::svg(p, &r, &times) {
        Ok(Some(svg)) => attachment(
            "image/svg+xml",
            &format!("{}-{}", x.slug, p.file_name()),
            svg.into_bytes(),
        ),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            format!("nothing to draw for {} yet", p.file_name()),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

async fn download(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, format)): Path<(i64, String)>,
    Query(q): Query<ResultsQuery>,
) -> Response {
    if let Err(r) = require(&st, &headers).await {
        return r;
    }
    let f = match Format::parse(&format) {
        Ok(f) => f,
        Err(e) => return (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    };
    let o = match q.options() {
        Ok(o) => o,
        Err(m) => return bad_request(m),
    };
    let x = match study::by_id(&st.db, id).await {
        Ok(Some(s)) => s,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no study {id}")).into_response(),
        Err(e) => return internal(e),
    };
    match export::export(&st.db, id, f, &o, no_progress()).await {
        Ok(bytes) => attachment(f.content_type(), &f.file_name(&x.slug), bytes),
        Err(e) => internal(e),
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn unauthorized(msg: &str) -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "error": msg })),
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"jndlab\""),
    );
    r
}

async fn api_results(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<ResultsQuery>,
) -> Response {
    let Some(token) = bearer(&headers) else {
        return unauthorized(
            "missing \"Authorization: Bearer TOKEN\" header (create a token on /admin/tokens)",
        );
    };
    match tokens::verify(&st.db, token).await {
        Ok(true) => {}
        Ok(false) => return unauthorized("invalid or revoked API token"),
        Err(e) => return internal(e),
    }
    let o = match q.options() {
        Ok(o) => o,
        Err(m) => return bad_request(m),
    };
    let (target, summary) = match q.target() {
        Ok(t) => t,
        Err(m) => return bad_request(m),
    };
    let (x, results) = match load(&st, id, &o).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match power::power(&st.db, &x, &results, target, summary).await {
        Ok(power) => axum::Json(ApiResults { results, power }).into_response(),
        Err(e) => internal(e),
    }
}

/// The results API's body: the results with the power planning (`power`) beside them.
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct ApiResults {
    #[serde(flatten)]
    pub results: StudyResults,
    pub power: PowerReport,
}

async fn tokens_view(st: &AppState, s: &super::auth::Session, created: Option<String>) -> Response {
    let list = match tokens::list(&st.db).await {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    let csrf = esc(&s.csrf);
    let mut b = String::new();
    if let Some(t) = created {
        let _ = write!(
            b,
            "<p class=\"ok\">New API token (shown only now; copy it): <code id=\"new-token\">{}</code></p>",
            esc(&t)
        );
    }
    b.push_str("<p>Tokens give read access to every study's results through <code>GET /api/studies/{id}/results</code> \
                with the header <code>Authorization: Bearer TOKEN</code>. They are stored hashed.</p>\
                <table id=\"tokens\"><tr><th>Id</th><th>Label</th><th>Created by</th><th>Last used</th><th></th></tr>");
    for t in &list {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/admin/tokens/{}/revoke\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>Revoke</button></form></td></tr>",
            t.id,
            esc(&t.label),
            esc(&t.created_by),
            if t.last_used_at == 0 {
                "never".to_string()
            } else {
                t.last_used_at.to_string()
            },
            t.id
        );
    }
    let _ = write!(
        b,
        "</table><h2>Create a token</h2><form method=\"post\" action=\"/admin/tokens\" id=\"token-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><label>Label <input name=\"label\" id=\"token-label\" required maxlength=\"100\"></label>\
         <button id=\"create-token\">Create</button></form>"
    );
    let mut r = page("API tokens", Some(s), &b).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn tokens_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match require(&st, &headers).await {
        Ok(s) => tokens_view(&st, &s, None).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: String,
    label: String,
}

async fn create_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let s = match require_csrf(&st, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match tokens::create(&st.db, &f.label, &s.username).await {
        Ok(t) => tokens_view(&st, &s, Some(t)).await,
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn revoke_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = require_csrf(&st, &headers, &f.csrf).await {
        return r;
    }
    match tokens::revoke(&st.db, id).await {
        Ok(()) => Redirect::to("/admin/tokens").into_response(),
        Err(e) => (StatusCode::NOT_FOUND, format!("{e:#}")).into_response(),
    }
}
