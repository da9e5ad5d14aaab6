//! Requests against the real router in-process (no socket): `send` one request, read status, headers, body.

use std::path::Path;

use app::server::{AppState, web};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use leptos::server_fn::ServerFn;
use tower::ServiceExt;

use super::TestDb;

pub fn router(t: &TestDb) -> Router {
    let addr = "127.0.0.1:3000".parse().unwrap();
    let mut state = AppState::new(
        t.db.clone(),
        t.data_dir(),
        web::leptos_options(Path::new("target/site"), addr),
        format!("http://{addr}"),
    );
    state.limiter = app::server::limits::Limiter::new(super::generous());
    web::router(state)
}

pub async fn send(r: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A logged-in admin's `Cookie` header value (creates the admin `admin`).
pub async fn admin_cookie(t: &TestDb) -> String {
    use app::server::auth;
    auth::create_admin(&t.db, "admin", "password123")
        .await
        .unwrap();
    let session = auth::login(&t.db, "admin", "password123")
        .await
        .unwrap()
        .unwrap();
    format!("{}={}", auth::SESSION_COOKIE, session.session)
}

/// `application/x-www-form-urlencoded` of the pairs: the participant client's encoder.
pub use app::participant::form;

pub fn post_form(uri: &str, body: String, cookie: Option<&str>) -> Request<Body> {
    let mut b =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body)).unwrap()
}

/// The participant's answer request, exactly as the page's server function sends it, with raw field values
/// (bad-input tests send what the page never would).
pub fn answer(key: &str, trial: &str, side: &str, rt: &str) -> Request<Body> {
    post_form(
        app::api::SubmitAnswer::PATH,
        form(&[
            ("key", key),
            ("trial", trial),
            ("side", side),
            ("rt_ms", rt),
        ]),
        None,
    )
}

/// Answers stored in the whole database.
pub async fn stored_answers(t: &TestDb) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM trials WHERE answer IS NOT NULL")
        .fetch_one(&t.db)
        .await
        .unwrap();
    n
}
