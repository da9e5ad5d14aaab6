//! Server side: database, studies, bundles, assignment, admin, HTTP.

pub mod admin;
pub mod answer;
pub mod assign;
pub mod auth;
pub mod bundle;
pub mod db;
pub mod design;
pub mod export;
pub mod fault;
pub mod limits;
pub mod media;
pub mod pages;
pub mod plots;
pub mod power;
pub mod quality;
pub mod results;
pub mod results_web;
pub mod study;
pub mod tokens;
pub mod web;

use std::path::PathBuf;
use std::sync::Arc;

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
    /// Mark cookies `Secure` (set when the public URL is https).
    pub secure_cookies: bool,
    /// Rate limits on unauthenticated work (HIT starts) and how client addresses are read.
    pub limiter: Arc<limits::Limiter>,
    /// Seed of the trial assignment (tests and reproducible simulations); None: the OS generator.
    pub assign_seed: Option<u64>,
}

impl AppState {
    /// A server state with the default limits and a random assignment.
    pub fn new(
        db: db::Db,
        data_dir: PathBuf,
        leptos: LeptosOptions,
        public_url: String,
    ) -> AppState {
        AppState {
            db,
            data_dir,
            leptos,
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            limiter: limits::Limiter::new(limits::Limits::default()),
            assign_seed: None,
        }
    }
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
