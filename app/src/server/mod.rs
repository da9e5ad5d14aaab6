//! Server side: database, studies, bundles, assignment, admin, HTTP.

pub mod admin;
pub mod assign;
pub mod auth;
pub mod bundle;
pub mod db;
pub mod export;
pub mod fault;
pub mod plots;
pub mod power;
pub mod results;
pub mod results_web;
pub mod simulate;
pub mod study;
pub mod tokens;
pub mod web;

use std::path::PathBuf;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

/// Shared state of the web server (also provided to Leptos server functions as context).
#[derive(Clone)]
pub struct AppState {
    pub db: db::Db,
    /// Where imported images live (`studies/{id}/`).
    pub data_dir: PathBuf,
    pub leptos: LeptosOptions,
    /// Base URL participants reach the server at (used in the links and the MTurk XML shown to admins).
    pub public_url: String,
    /// Mark admin cookies `Secure` (set when the public URL is https).
    pub secure_cookies: bool,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> LeptosOptions {
        s.leptos.clone()
    }
}

/// Logs of the command-line tools to stderr (`RUST_LOG` filters; default info, sqlx quiet).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
