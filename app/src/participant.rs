//! A simulated participant over HTTP, exactly as the browser talks to the server: fetch the study page,
//! start the HIT through the `start_hit` server function, answer each trial through `submit_answer`.
//! Used by the load generator (`jndlab-load`) and the crash test; the answer *choice* is the caller's
//! (`crate::observer` supplies a metric-driven one).

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use leptos::server_fn::ServerFn;

use crate::api::{EntryParams, HitView, StartHit, SubmitAnswer};

/// One failed request: the HTTP status (None: no response at all, e.g. the server is down) and the body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", status.map(|s| s.to_string()).unwrap_or_else(|| "no response".into()))]
pub struct RequestError {
    pub status: Option<u16>,
    pub message: String,
}

/// An HTTP/1.1 client (keep-alive, shared by many participants) bound to one server.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `application/x-www-form-urlencoded` of the pairs (keys may carry serde_qs brackets).
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Client {
    /// `base` like `http://127.0.0.1:3000`.
    pub fn new(base: &str) -> Client {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        Client {
            http: HyperClient::builder(TokioExecutor::new())
                .pool_max_idle_per_host(4096)
                .build(conn),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes), RequestError> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| RequestError {
                status: None,
                message: e.to_string(),
            })?;
        let resp = self.http.request(req).await.map_err(|e| RequestError {
            status: None,
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| RequestError {
                status: Some(status),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok((status, bytes))
    }

    /// GETs a page (e.g. `/s/demo?assignmentId=...`); returns its latency. Non-2xx is an error.
    pub async fn page(&self, path: &str) -> Result<Duration, RequestError> {
        let t = Instant::now();
        let (status, body) = self.request(Method::GET, path, None).await?;
        if !(200..300).contains(&status) {
            return Err(RequestError {
                status: Some(status),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(t.elapsed())
    }

    /// GETs a file (e.g. an image at `/media/{id}`) and returns its bytes. Non-2xx is an error.
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, RequestError> {
        let (status, body) = self.request(Method::GET, path, None).await?;
        if !(200..300).contains(&status) {
            return Err(RequestError {
                status: Some(status),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(body)
    }

    async fn server_fn(&self, path: &str, body: String) -> Result<HitView, RequestError> {
        let (status, bytes) = self.request(Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&status) {
            return Err(RequestError {
                status: Some(status),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| RequestError {
            status: Some(status),
            message: format!("unexpected response: {e}"),
        })
    }

    /// Starts (or resumes: the server returns the existing HIT) the HIT of these entry parameters.
    pub async fn start(&self, slug: &str, p: &EntryParams) -> Result<HitView, RequestError> {
        let mut pairs = vec![("slug", slug.to_string())];
        for (k, v) in [
            ("params[assignment_id]", &p.assignment_id),
            ("params[hit_id]", &p.hit_id),
            ("params[worker_id]", &p.worker_id),
            ("params[turk_submit_to]", &p.turk_submit_to),
            ("params[prolific_pid]", &p.prolific_pid),
            ("params[prolific_study_id]", &p.prolific_study_id),
            ("params[prolific_session_id]", &p.prolific_session_id),
            ("params[pid]", &p.pid),
        ] {
            if let Some(v) = v {
                pairs.push((k, v.clone()));
            }
        }
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.server_fn(StartHit::PATH, form(&pairs)).await
    }

    /// Answers one trial ("left" or "right").
    pub async fn answer(
        &self,
        slug: &str,
        key: &str,
        trial_id: i64,
        side: &str,
        rt_ms: i64,
    ) -> Result<HitView, RequestError> {
        let body = form(&[
            ("slug", slug),
            ("key", key),
            ("trial_id", &trial_id.to_string()),
            ("side", side),
            ("rt_ms", &rt_ms.to_string()),
        ]);
        self.server_fn(SubmitAnswer::PATH, body).await
    }
}

/// The study page URL of an MTurk participant (what the ExternalQuestion frame loads).
pub fn mturk_page(slug: &str, assignment: &str, worker: &str) -> String {
    format!(
        "/s/{slug}?assignmentId={}&hitId=H1&workerId={}&turkSubmitTo={}",
        enc(assignment),
        enc(worker),
        enc("https://workersandbox.mturk.com")
    )
}

/// The entry parameters of that page.
pub fn mturk_params(assignment: &str, worker: &str) -> EntryParams {
    EntryParams {
        assignment_id: Some(assignment.into()),
        hit_id: Some("H1".into()),
        worker_id: Some(worker.into()),
        turk_submit_to: Some("https://workersandbox.mturk.com".into()),
        ..Default::default()
    }
}
