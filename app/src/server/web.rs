//! The HTTP server: Leptos participant pages and server functions, admin pages, image files, static site
//! files (`/pkg/app.js|wasm|css`), and the Content-Security-Policy that lets MTurk frame the pages.

use std::net::SocketAddr;
use std::path::Path as FsPath;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;
use super::fault::{AppError, AppResult};
use super::{admin, design, media, results_web};
use crate::ui::{App, shell};

/// The Content-Security-Policy of every response: pages may be framed by MTurk's worker sites
/// (ExternalQuestion) and nobody else; no plugins; no foreign `<base>`.
pub const CSP: &str = "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com https://www.mturk.com; object-src 'none'; base-uri 'self'";

/// Largest request body a participant route accepts; bundle uploads have their own limit on `/admin/import`.
pub use crate::api::MAX_BODY_BYTES;

pub fn leptos_options(site_root: &FsPath, addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("app")
        .site_root(site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build()
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let site_root = state.leptos.site_root.to_string();
    let ctx = state.clone();
    let opts = state.leptos.clone();
    let participant = Router::new()
        .route("/media/{token}", get(media))
        .route("/healthz", get(|| async { "ok" }))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ctx.clone()),
            move || shell(opts.clone()),
        )
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    participant
        .route("/admin/studies/{id}/images/{image}", get(admin_image))
        .merge(admin::routes())
        .merge(results_web::routes())
        .fallback_service(ServeDir::new(site_root))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

/// `/media/{token}`: an image of a HIT in progress (or the preview example) of a live study, padded to its
/// scene's common length (see `media`). Everything else is the same plain 404.
async fn media(State(st): State<AppState>, Path(token): Path<String>) -> Response {
    match media::lookup(&st.db, &token).await {
        Ok(Some(m)) => match media::read_file(&st.data_dir, m.study_id, &m.file_name).await {
            Ok(bytes) => image_response(
                media::pad_png(&bytes, m.served_bytes as usize),
                "private, max-age=3600",
            ),
            Err(e) => {
                tracing::error!("image {}: {}: {e}", m.image_id, m.file_name);
                StatusCode::NOT_FOUND.into_response()
            }
        },
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

fn image_response(bytes: Vec<u8>, cache: &'static str) -> Response {
    let mime = if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    };
    (
        [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, cache)],
        bytes,
    )
        .into_response()
}

/// `/admin/studies/{id}/images/{image}`: any image of a study, for admins (unpadded, any state).
async fn admin_image(
    State(st): State<AppState>,
    _admin: admin::Admin,
    Path((study_id, image_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let (file,): (String,) =
        sqlx::query_as("SELECT file_name FROM images WHERE id = $1 AND study_id = $2")
            .bind(image_id)
            .bind(study_id)
            .fetch_optional(&st.db)
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!("study {study_id} has no image {image_id}"))
            })?;
    let bytes = media::read_file(&st.data_dir, study_id, &file)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("image {image_id}: {file}: {e}")))?;
    Ok(image_response(bytes, "private, no-store"))
}

/// Housekeeping while the server runs: expires HITs past their inactivity timeout (so abandoned HITs'
/// items return to the pool and the pages say so without waiting for a new HIT), purges expired admin
/// sessions.
pub fn spawn_housekeeping(state: &AppState) -> tokio::task::JoinHandle<()> {
    let db = state.db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = design::expire_all(&db).await {
                tracing::warn!("housekeeping: expiring abandoned HITs: {e:#}");
            }
            if let Err(e) = super::auth::purge_expired(&db).await {
                tracing::warn!("housekeeping: purging expired sessions: {e:#}");
            }
        }
    })
}

/// Serves until Ctrl-C.
pub async fn serve(state: AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    media::backfill_padding(&state.db, &state.data_dir).await?;
    let _housekeeping = spawn_housekeeping(&state);
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// Serves `db` (images under `data_dir`) on an ephemeral port of 127.0.0.1 in a background task (the
/// in-process server of `simulate` and of tests); returns the address and the task (abort it to stop).
pub async fn spawn_local(
    db: super::db::Db,
    data_dir: std::path::PathBuf,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let mut state = AppState::new(
        db,
        data_dir,
        leptos_options(FsPath::new("target/site"), "127.0.0.1:0".parse()?),
        "http://127.0.0.1".into(),
    );
    // Only this process talks to it.
    state.limiter = super::limits::Limiter::new(super::limits::Limits::unlimited());
    spawn_state(state).await
}

/// Serves `state` on an ephemeral port of 127.0.0.1 in a background task (tests that set limits or a seed).
pub async fn spawn_state(
    state: AppState,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    media::backfill_padding(&state.db, &state.data_dir).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener.local_addr()?;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("in-process server: {e}");
        }
    });
    Ok((addr, handle))
}
