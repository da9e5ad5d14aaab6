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
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;
use super::{admin, bundle, results_web};
use crate::ui::{App, shell};

/// Pages may be framed by MTurk's worker sites (ExternalQuestion) and nobody else.
pub const FRAME_ANCESTORS: &str = "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com https://www.mturk.com";

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
    Router::new()
        .route("/media/{id}", get(media))
        .route("/healthz", get(|| async { "ok" }))
        .merge(admin::routes())
        .merge(results_web::routes())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ctx.clone()),
            move || shell(opts.clone()),
        )
        .fallback_service(ServeDir::new(site_root))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(FRAME_ANCESTORS),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
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

/// Serves until Ctrl-C.
pub async fn serve(state: AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    axum::serve(listener, router(state).into_make_service())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
