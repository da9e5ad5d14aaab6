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

use crate::api::{AnswerAck, EntryParams, HitView, Side, StartHit, SubmitAnswer};

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

/// `application/x-www-form-urlencoded` of the pairs (raw bodies, e.g. malformed ones in tests).
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A server function's arguments encoded exactly as its browser client encodes them.
fn server_fn_body(args: &impl serde::Serialize) -> String {
    serde_qs::to_string(args).expect("server function arguments serialise")
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

    async fn server_fn<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: String,
    ) -> Result<T, RequestError> {
        let (status, bytes) = self.request(Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&status) {
            // The server function's typed error, or whatever else came back.
            let message = serde_json::from_slice::<crate::api::ParticipantError>(&bytes)
                .map(|e| e.message().to_string())
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(RequestError {
                status: Some(status),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| RequestError {
            status: Some(status),
            message: format!("unexpected response: {e}"),
        })
    }

    /// Starts (or resumes: the server returns the existing HIT) the HIT of these entry parameters.
    pub async fn start(&self, slug: &str, p: &EntryParams) -> Result<HitView, RequestError> {
        self.server_fn(StartHit::PATH, start_form(slug, p)).await
    }

    /// Answers trial `position` of the HIT with token `key`.
    pub async fn answer(
        &self,
        key: &str,
        position: u32,
        side: Side,
        rt_ms: i64,
    ) -> Result<AnswerAck, RequestError> {
        self.server_fn(SubmitAnswer::PATH, answer_form(key, position, side, rt_ms))
            .await
    }

    /// POSTs a raw form to a server function: the status and body, whatever they are (attack tests).
    pub async fn post_raw(&self, path: &str, body: String) -> Result<(u16, String), RequestError> {
        let (status, bytes) = self.request(Method::POST, path, Some(body)).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// The body of an answer exactly as the page's server function sends it.
pub fn answer_form(key: &str, position: u32, side: Side, rt_ms: i64) -> String {
    server_fn_body(&SubmitAnswer {
        key: key.to_string(),
        trial: position,
        side,
        rt_ms,
    })
}

/// The body of a HIT start exactly as the page's server function sends it.
pub fn start_form(slug: &str, p: &EntryParams) -> String {
    server_fn_body(&StartHit {
        slug: slug.to_string(),
        params: p.clone(),
    })
}

/// The study page URL of an MTurk participant (what the ExternalQuestion frame loads).
pub fn mturk_page(slug: &str, assignment: &str, worker: &str) -> String {
    let q = form(&[
        ("assignmentId", assignment),
        ("hitId", "H1"),
        ("workerId", worker),
        ("turkSubmitTo", "https://workersandbox.mturk.com"),
    ]);
    format!("/s/{slug}?{q}")
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

/// One answer the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The HIT's token.
    pub key: String,
    pub position: u32,
    pub side: Side,
}

/// How many acknowledged answers are not in the database as acknowledged (lost answers).
pub async fn lost_answers(db: &crate::server::db::Db, acked: &[Acked]) -> anyhow::Result<usize> {
    let mut stored = std::collections::HashMap::new();
    for chunk in acked.chunks(300) {
        let mut keys: Vec<&str> = chunk.iter().map(|a| a.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let list = keys
            .iter()
            .map(|k| format!("'{}'", k.replace('\'', "")))
            .collect::<Vec<_>>()
            .join(",");
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(&format!(
            "SELECT h.token, t.position, t.answer FROM trials t JOIN hits h ON h.id = t.hit_id WHERE h.token IN ({list})"
        ))
        .fetch_all(db)
        .await?;
        for (k, p, a) in rows {
            stored.insert((k, p as u32), a);
        }
    }
    Ok(acked
        .iter()
        .filter(|a| {
            stored
                .get(&(a.key.clone(), a.position))
                .and_then(|x| x.as_deref())
                != Some(a.side.as_str())
        })
        .count())
}
