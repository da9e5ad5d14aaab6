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
use super::{admin, bundle, results_web};
use crate::ui::{App, shell};

/// The Content-Security-Policy of every response: pages may be framed by MTurk's worker sites
/// (ExternalQuestion) and nobody else; no plugins; no foreign `<base>`.
pub const CSP: &str = "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com https://www.mturk.com; object-src 'none'; base-uri 'self'";

/// Largest request body a participant route accepts (answers are a few hundred bytes); bundle uploads
/// have their own limit on `/admin/import`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
        .route("/media/{id}", get(media))
        .route("/healthz", get(|| async { "ok" }))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ctx.clone()),
            move || shell(opts.clone()),
        )
        .layer(axum::middleware::from_fn(malformed_is_400))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    participant
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

async fn media(State(st): State<AppState>, Path(id): Path<i64>) -> Response {
    let row: Result<Option<(i64, String)>, _> =
        sqlx::query_as("SELECT study_id, file_name FROM images WHERE id = $1")
            .bind(id)
            .fetch_optional(&st.db)
            .await;
    let (study_id, file) = match row {
        Ok(Some(r)) => r,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let path = bundle::study_dir(&st.data_dir, study_id).join(&file);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mime = if file.ends_with(".png") {
                "image/png"
            } else {
                "image/jpeg"
            };
            (
                [
                    (header::CONTENT_TYPE, mime),
                    (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!("image {id}: {}: {e}", path.display());
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// Leptos answers a server-function request whose arguments do not parse (a trial id that is not a number,
/// a missing field) with 500; it is the client's fault, so it becomes 400 with the same message.
async fn malformed_is_400(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    if !is_api || resp.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("length limit exceeded") {
        // A body without Content-Length that ran past MAX_BODY_BYTES while being read.
        parts.status = StatusCode::PAYLOAD_TOO_LARGE;
    } else if ["Args|", "Deserialization|", "MissingArg|"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Serves until Ctrl-C.
pub async fn serve(state: AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
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
    let state = AppState {
        db,
        data_dir,
        leptos: leptos_options(FsPath::new("target/site"), "127.0.0.1:0".parse()?),
        public_url: "http://127.0.0.1".into(),
        secure_cookies: false,
    };
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
