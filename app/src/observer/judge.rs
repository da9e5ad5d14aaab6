//! What the simulated observers see: images fetched over HTTP by URL, decoded once, and the MS-SSIM of a
//! candidate against its reference computed once per (reference URL, candidate URL) and shared by all
//! observers (the same images recur in every HIT).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use image::RgbImage;

use super::metric;
use super::model::Seen;
use crate::participant::Client;

type Cell<T> = Arc<OnceLock<Result<T, String>>>;

/// The shared cache of decoded images and scores.
#[derive(Default)]
pub struct Judge {
    images: Mutex<HashMap<String, Cell<Arc<RgbImage>>>>,
    scores: Mutex<HashMap<(String, String), Cell<Seen>>>,
}

fn cell<K: std::hash::Hash + Eq + Clone, T>(m: &Mutex<HashMap<K, Cell<T>>>, k: &K) -> Cell<T> {
    m.lock()
        .expect("judge cache lock")
        .entry(k.clone())
        .or_default()
        .clone()
}

impl Judge {
    pub fn new() -> Arc<Judge> {
        Arc::new(Judge::default())
    }

    /// The score of (reference, candidate) if already computed.
    pub fn cached(&self, reference: &str, candidate: &str) -> Option<Result<Seen, String>> {
        let key = (reference.to_string(), candidate.to_string());
        self.scores
            .lock()
            .expect("judge cache lock")
            .get(&key)
            .and_then(|c| c.get().cloned())
    }

    /// Decodes the image of `url` from `bytes` (once per URL).
    fn image(&self, url: &str, bytes: &[u8]) -> Result<Arc<RgbImage>, String> {
        cell(&self.images, &url.to_string())
            .get_or_init(|| {
                image::load_from_memory(bytes)
                    .map(|i| Arc::new(i.to_rgb8()))
                    .map_err(|e| format!("{url}: cannot decode: {e}"))
            })
            .clone()
    }

    /// MS-SSIM of candidate against reference (CPU-bound; call from a blocking thread), computed once per
    /// pair of URLs.
    pub fn score_blocking(
        &self,
        reference: (&str, &[u8]),
        candidate: (&str, &[u8]),
    ) -> Result<Seen, String> {
        let key = (reference.0.to_string(), candidate.0.to_string());
        cell(&self.scores, &key)
            .get_or_init(|| {
                let r = self.image(reference.0, reference.1)?;
                let c = self.image(candidate.0, candidate.1)?;
                let ms_ssim = metric::ms_ssim(&r, &c)
                    .map_err(|e| format!("{} vs {}: {e}", reference.0, candidate.0))?;
                Ok(Seen {
                    ms_ssim,
                    identical: *r == *c,
                })
            })
            .clone()
    }

    /// The score of a candidate whose bytes (and the reference's) are fetched over HTTP as needed.
    pub async fn score(
        self: &Arc<Judge>,
        client: &Client,
        fetched: &mut HashMap<String, Arc<[u8]>>,
        reference: &str,
        candidate: &str,
    ) -> Result<Seen, String> {
        for url in [reference, candidate] {
            if !fetched.contains_key(url) {
                let b = client
                    .get_bytes(url)
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                fetched.insert(url.to_string(), Arc::from(&b[..]));
            }
        }
        if let Some(s) = self.cached(reference, candidate) {
            return s;
        }
        let (rb, cb) = (fetched[reference].clone(), fetched[candidate].clone());
        let (r, c) = (reference.to_string(), candidate.to_string());
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.score_blocking((&r, &rb), (&c, &cb)))
            .await
            .map_err(|e| format!("metric task failed: {e}"))?
    }
}
