//! HTTP side of the results: the admin results page (tables + inline SVG plots), plot and export
//! downloads, the API-token admin page, and the token-authenticated results JSON API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::AppState;
use super::admin::{Admin, CsrfForm};
use super::auth::Session;
use super::export::{self, FORMATS, Format};
use super::fault::{AppError, AppResult, refusal};
use super::pages::{self, f2, matrix, page, post_button};
use super::plots::{self, PLOTS, Plot};
use super::power::{self, PowerReport};
use super::quality::Flags;
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
    /// The options, or a 400 naming the field.
    fn options(&self) -> AppResult<ResultsOptions> {
        self.parse_options().map_err(AppError::BadRequest)
    }

    fn parse_options(&self) -> Result<ResultsOptions, String> {
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

    /// The power planning's target, or a 400 naming the field.
    fn target(&self) -> AppResult<(f64, WidthSummary)> {
        let t = power::parse_target(self.target.as_deref()).map_err(AppError::BadRequest)?;
        let w = power::parse_summary(self.width.as_deref()).map_err(AppError::BadRequest)?;
        Ok((t, w))
    }
}

/// Rows of the outlier table shown (worst first; all of them are in the JSON export).
const OUTLIER_ROWS: usize = 50;

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

async fn load(st: &AppState, id: i64, o: &ResultsOptions) -> AppResult<(Study, StudyResults)> {
    let s = study::by_id(&st.db, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study {id}")))?;
    let r = results::results(&st.db, id, o, no_progress()).await?;
    Ok((s, r))
}

fn ci_text(l: Option<&Vec<f64>>, h: Option<&Vec<f64>>, i: usize) -> String {
    match (l, h) {
        (Some(l), Some(h)) => format!("[{}, {}]", f2(l[i]), f2(h[i])),
        _ => "-".into(),
    }
}

fn pooled_table(r: &StudyResults) -> Markup {
    let Some(p) = &r.analysis.pooled else {
        return html! { p id="no-scores" { "No scores yet." } };
    };
    let mut order: Vec<usize> = (0..p.conditions.len()).collect();
    order.sort_by(|&a, &c| p.jnd[c].total_cmp(&p.jnd[a]));
    html! {
        table id="jnd-table" {
            tr { th { "Condition" } th { "JND" } th { "95% CI" } th { "Mean PSNR (dB)" } }
            @for i in order {
                tr class="jnd-row" data-condition=(p.conditions[i]) data-jnd=(p.jnd[i]) {
                    td { (p.conditions[i]) }
                    td { (f2(p.jnd[i])) }
                    td { (ci_text(p.ci_low.as_ref(), p.ci_high.as_ref(), i)) }
                    td { (r.mean_psnr.get(i).copied().flatten().map(f2).unwrap_or_else(|| "-".into())) }
                }
            }
        }
        p { (p.observers) " observers, " (p.answers) " answers, " (p.replicates_used) " bootstrap replicates used." }
    }
}

fn scene_table(r: &StudyResults) -> Markup {
    let Some(p) = &r.analysis.pooled else {
        return html! {};
    };
    let cell = |s: &results::SceneResult, c: &str| {
        s.result
            .as_ref()
            .and_then(|x| {
                let i = x.conditions.iter().position(|k| k == c)?;
                Some(match (&x.ci_low, &x.ci_high) {
                    (Some(l), Some(h)) => format!("{} [{}, {}]", f2(x.jnd[i]), f2(l[i]), f2(h[i])),
                    _ => f2(x.jnd[i]),
                })
            })
            .unwrap_or_else(|| "-".into())
    };
    html! {
        h2 { "Per scene" }
        table id="scene-table" {
            tr { th { "Condition" } @for s in &r.analysis.per_scene { th { (s.scene) } } }
            @for c in &p.conditions {
                tr { td { (c) } @for s in &r.analysis.per_scene { td { (cell(s, c)) } } }
            }
        }
        @for s in r.analysis.per_scene.iter().filter(|s| !s.warnings.is_empty()) {
            p class="notice" { "Scene " (s.scene) ": " (s.warnings.join("; ")) }
        }
    }
}

fn power_section(x: &Study, r: &StudyResults, p: &PowerReport) -> Markup {
    let o = &r.options;
    let opt = |v: Option<f64>| v.map(f2).unwrap_or_else(|| "-".into());
    let w = match p.summary {
        WidthSummary::Mean => "Mean",
        WidthSummary::Max => "Widest",
    };
    html! {
        h2 id="power" { "Power planning" }
        p {
            "How many more comparisons until the width of the pooled 95% CIs (the mean over conditions, or the widest) \
             reaches the target: synthetic studies drawn from the fitted scores (Thurstone case V) over the study's pairs, "
            (power::REPLICATES) " per candidate total, scaled like the data; the width is the 2.5-97.5 percentile spread of \
             each condition's score. It assumes observers agree with the model: with disagreeing observers the bootstrap \
             CIs are wider than simulated."
        }
        form method="get" action={ "/admin/studies/" (x.id) "/results#power" } id="power-form" class="settings" {
            input type="hidden" name="observer" value=(o.observer.as_str());
            input type="hidden" name="include_excluded" value=(u8::from(o.include_excluded));
            input type="hidden" name="replicates" value=(o.replicates);
            input type="hidden" name="seed" value=(o.seed);
            label { "Target CI width (JND) "
                input type="number" name="target" id="power-target" min="0.01" max=(power::MAX_TARGET) step="0.01" value=(p.target); }
            " "
            label { "for the "
                select name="width" id="power-width" {
                    option value="mean" selected[p.summary == WidthSummary::Mean] { "mean" }
                    option value="max" selected[p.summary == WidthSummary::Max] { "widest" }
                }
                " CI"
            }
            " " button id="apply-target" { "Estimate" }
        }
        @if let Some(plan) = &p.plan {
            table id="power-table" {
                tr {
                    th { (w) " CI width now (bootstrap)" } th { (w) " CI width now (simulated)" } th { "Target" }
                    th { "Comparisons so far" } th { "Comparisons needed" } th { "Additional comparisons" }
                    th { "Additional HITs (" (p.trials_per_hit) " pair trials each)" }
                }
                tr {
                    td id="power-bootstrap-width" { (opt(p.bootstrap_width)) }
                    td id="power-current-width" { (opt(plan.current_width)) }
                    td id="power-target-value" { (f2(p.target)) }
                    td id="power-current" { (plan.current_comparisons) }
                    td id="power-needed" { (plan.needed_comparisons) }
                    td id="power-additional" { (plan.additional_comparisons) }
                    td id="power-hits" { (p.additional_hits.unwrap_or(0)) }
                }
            }
            p id="power-status" { (p.status()) }
            @for n in &p.notes { p class="notice" { (n) } }
            @match power::svg(p) {
                Ok(Some(svg)) => figure class="plot" id="plot-power" { (pages::svg(&svg)) },
                Ok(None) => {},
                Err(e) => p class="error" { (format!("{e:#}")) },
            }
        } @else {
            p class="notice" id="power-status" { (p.status()) }
        }
    }
}

fn counts_section(r: &StudyResults) -> Markup {
    let c = &r.counts;
    html! {
        h2 { "Counts" }
        table id="counts" {
            tr {
                th { "Answers" } th { "Valid" } th { "Used" } th { "Left out: excluded" } th { "in progress" }
                th { "abandoned" } th { "Valid but flagged" } th { "HITs" } th { "Excluded HITs" } th { "Workers" }
                th { "Observers used" }
            }
            tr {
                td id="answers-total" { (c.answers_total) } td id="answers-valid" { (c.answers_valid) }
                td id="answers-used" { (c.answers_used) } td id="answers-excluded" { (c.answers_excluded) }
                td id="answers-in-progress" { (c.answers_in_progress) } td id="answers-abandoned" { (c.answers_abandoned) }
                td id="answers-flagged-kept" { (c.answers_flagged_kept) } td { (c.hits) }
                td id="hits-excluded" { (c.hits_excluded) } td { (c.workers) } td id="observers-used" { (c.observers_used) }
            }
        }
        @if !c.excluded_by.is_empty() {
            table id="excluded-by" {
                tr { th { "Excluded answers by flag" } th { "Answers" } }
                @for (flag, n) in &c.excluded_by { tr { td { (flag) } td id={ "excluded-" (flag) } { (n) } } }
            }
        }
    }
}

fn outliers_section(r: &StudyResults) -> Markup {
    if r.analysis.outliers.is_empty() {
        return html! {};
    }
    let mut rows: Vec<_> = r.analysis.outliers.iter().collect();
    rows.sort_by(|a, c| {
        c.dist_l
            .unwrap_or(f64::INFINITY)
            .total_cmp(&a.dist_l.unwrap_or(f64::INFINITY))
    });
    let hidden = rows.len().saturating_sub(OUTLIER_ROWS);
    html! {
        h2 { "Observer outliers" }
        p {
            "pwcmp's screen of the valid answers, observer = " (results::screen_unit(&r.rules).as_str())
            ": leave-one-out log10 likelihood per observer; dist_L ≥ " (r.rules.outlier_fence)
            " flags an outlier (" @if r.rules.exclude.contains(Flags::OUTLIER) { "excluded" } @else { "flagged, kept" }
            " by this study's rules)."
        }
        table id="outliers" {
            tr { th { "Observer" } th { "log10 L" } th { "dist_L" } th { "Outlier" } }
            @for o in rows.iter().take(OUTLIER_ROWS) {
                tr {
                    td { (o.observer) } td { (format!("{:.3}", o.log_likelihood)) }
                    td { (o.dist_l.map(f2).unwrap_or_else(|| "-".into())) }
                    td { @if o.outlier { "yes" } @else { "no" } }
                }
            }
        }
        @if hidden > 0 { p { (hidden) " more observers with smaller dist_L are in the JSON export." } }
    }
}

fn results_body(
    st: &AppState,
    x: &Study,
    r: &StudyResults,
    p: &PowerReport,
    times: &[(i64, bool)],
) -> Markup {
    let o = &r.options;
    let q = query_string(o);
    let id = x.id;
    let public = st.public_url.trim_end_matches('/');
    html! {
        p { a href={ "/admin/studies/" (id) } { "Back to the study" } }
        form method="get" action={ "/admin/studies/" (id) "/results" } id="results-options" class="settings" {
            label { "Observer "
                select name="observer" {
                    option value="hit" selected[o.observer == ObserverUnit::Hit] { "HIT" }
                    option value="worker" selected[o.observer == ObserverUnit::Worker] { "worker" }
                }
            }
            label { "Include excluded HITs " input type="checkbox" name="include_excluded" value="1" checked[o.include_excluded]; }
            label { "Bootstrap replicates " input type="number" name="replicates" min="0" max=(MAX_WEB_REPLICATES) value=(o.replicates); }
            label { "Seed " input type="number" name="seed" min="0" value=(o.seed); }
            button id="apply-options" { "Recompute" }
        }
        (counts_section(r))
        @for w in &r.analysis.warnings { p class="notice" { (w) } }
        h2 { "JND per condition (pooled over scenes)" }
        (pooled_table(r))
        @for plot in PLOTS {
            @match plots::svg(plot, r, times) {
                Ok(Some(svg)) => figure class="plot" id={ "plot-" (plot.file_name()) } {
                    (pages::svg(&svg))
                    figcaption { a href={ "/admin/studies/" (id) "/plots/" (plot.file_name()) "?" (q) } download { "Download " (plot.file_name()) } }
                },
                Ok(None) => {},
                Err(e) => p class="error" { (format!("{e:#}")) },
            }
        }
        (power_section(x, r, p))
        (scene_table(r))
        @if let (Some(pooled), Some(s)) = (&r.analysis.pooled, &r.analysis.significance) {
            h2 { "Significance" }
            p { "Two-tailed p-values of a z-test on the bootstrap covariance; " b { "bold" } ": p < " (s.alpha) "." }
            (matrix("significance", &pooled.conditions, |i, j| html! {
                @if i == j { "-" }
                @else if s.significant[i][j] { b class="significant" { (format!("{:.3}", s.p_value[i][j])) } }
                @else { (format!("{:.3}", s.p_value[i][j])) }
            }))
        }
        @if let Some(pooled) = &r.analysis.pooled {
            h2 { "Comparison counts" }
            p { "Row i, column j: times i was chosen over j." }
            (matrix("count-matrix", &pooled.conditions, |i, j| html! {
                @if i == j { "-" } @else { (r.analysis.count_matrix[i][j]) }
            }))
        }
        (outliers_section(r))
        h2 { "Downloads" }
        ul id="downloads" {
            @for f in FORMATS {
                li { a href={ "/admin/studies/" (id) "/export/" (f.as_str()) "?" (q) } id={ "export-" (f.as_str()) } { (f.file_name(&x.slug)) } }
            }
        }
        h2 { "API" }
        p {
            "For scripts: " code { "curl -H \"Authorization: Bearer TOKEN\" \"" (public) "/api/studies/" (id) "/results?" (q) "\"" }
            " returns this page's data as JSON. " a href="/admin/tokens" { "Manage API tokens" } "."
        }
        p { small { "Computed " (r.computed_at_ms) " (data version " (r.data_version) ")." } }
    }
}

async fn results_page(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Query(q): Query<ResultsQuery>,
) -> AppResult<Response> {
    let o = q.options()?;
    let (target, summary) = q.target()?;
    let (x, r) = load(&st, id, &o).await?;
    let p = power::power(&st.db, &x, &r, target, summary).await?;
    let times = results::answer_times(&st.db, id).await?;
    let body = results_body(&st, &x, &r, &p, &times);
    Ok(page(&format!("Results: {}", x.name), Some(&admin.0), body).into_response())
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
    _admin: Admin,
    Path((id, name)): Path<(i64, String)>,
    Query(q): Query<ResultsQuery>,
) -> AppResult<Response> {
    let p = Plot::parse(&name).ok_or_else(|| {
        let names: Vec<_> = PLOTS.iter().map(|p| p.file_name()).collect();
        AppError::NotFound(format!(
            "no plot \"{name}\" (expected one of {})",
            names.join(", ")
        ))
    })?;
    let o = q.options()?;
    let (x, r) = load(&st, id, &o).await?;
    let times = if p == Plot::AnswersOverTime {
        results::answer_times(&st.db, id).await?
    } else {
        Vec::new()
    };
    match plots::svg(p, &r, &times)? {
        Some(svg) => Ok(attachment(
            "image/svg+xml",
            &format!("{}-{}", x.slug, p.file_name()),
            svg.into_bytes(),
        )),
        None => Err(AppError::NotFound(format!(
            "nothing to draw for {} yet",
            p.file_name()
        ))),
    }
}

async fn download(
    State(st): State<AppState>,
    _admin: Admin,
    Path((id, format)): Path<(i64, String)>,
    Query(q): Query<ResultsQuery>,
) -> AppResult<Response> {
    let f = Format::parse(&format).map_err(|e| AppError::NotFound(e.to_string()))?;
    let o = q.options()?;
    let x = study::by_id(&st.db, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study {id}")))?;
    let bytes = export::export(&st.db, id, f, &o, no_progress()).await?;
    Ok(attachment(f.content_type(), &f.file_name(&x.slug), bytes))
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

/// 401 with the JSON body and `WWW-Authenticate` header scripts expect.
fn unauthorized(msg: &str) -> Response {
    let mut r = (
        axum::http::StatusCode::UNAUTHORIZED,
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
) -> AppResult<Response> {
    let Some(token) = bearer(&headers) else {
        return Ok(unauthorized(
            "missing \"Authorization: Bearer TOKEN\" header (create a token on /admin/tokens)",
        ));
    };
    if !tokens::verify(&st.db, token).await? {
        return Ok(unauthorized("invalid or revoked API token"));
    }
    let o = q.options()?;
    let (target, summary) = q.target()?;
    let (x, results) = load(&st, id, &o).await?;
    let power = power::power(&st.db, &x, &results, target, summary).await?;
    Ok(axum::Json(ApiResults { results, power }).into_response())
}

/// The results API's body: the results with the power planning (`power`) beside them.
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct ApiResults {
    #[serde(flatten)]
    pub results: StudyResults,
    pub power: PowerReport,
}

async fn tokens_view(st: &AppState, s: &Session, created: Option<String>) -> AppResult<Response> {
    let list = tokens::list(&st.db).await?;
    let body = html! {
        @if let Some(t) = &created {
            p class="ok" { "New API token (shown only now; copy it): " code id="new-token" { (t) } }
        }
        p {
            "Tokens give read access to every study's results through " code { "GET /api/studies/{id}/results" }
            " with the header " code { "Authorization: Bearer TOKEN" } ". They are stored hashed."
        }
        table id="tokens" {
            tr { th { "Id" } th { "Label" } th { "Created by" } th { "Last used" } th {} }
            @for t in &list {
                tr {
                    td { (t.id) } td { (t.label) } td { (t.created_by) }
                    td { @if t.last_used_at == 0 { "never" } @else { (t.last_used_at) } }
                    td { (post_button(s, &format!("/admin/tokens/{}/revoke", t.id), &[], None, "Revoke")) }
                }
            }
        }
        h2 { "Create a token" }
        form method="post" action="/admin/tokens" id="token-form" {
            (pages::csrf(s))
            label { "Label " input name="label" id="token-label" required maxlength="100"; }
            button id="create-token" { "Create" }
        }
    };
    let mut r = page("API tokens", Some(s), body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn tokens_page(State(st): State<AppState>, admin: Admin) -> AppResult<Response> {
    tokens_view(&st, &admin.0, None).await
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: String,
    label: String,
}

async fn create_token(
    State(st): State<AppState>,
    admin: Admin,
    Form(f): Form<TokenForm>,
) -> AppResult<Response> {
    let s = admin.checked(&f.csrf)?;
    let t = tokens::create(&st.db, &f.label, &s.username)
        .await
        .map_err(|e| refusal(e, AppError::BadRequest))?;
    tokens_view(&st, s, Some(t)).await
}

async fn revoke_token(
    State(st): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    admin.checked(&f.csrf)?;
    tokens::revoke(&st.db, id)
        .await
        .map_err(|e| refusal(e, AppError::NotFound))?;
    Ok(Redirect::to("/admin/tokens").into_response())
}
