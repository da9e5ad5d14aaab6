//! What the simulated observers see: images fetched over HTTP (each HIT has its own URLs), decoded, and the
//! MS-SSIM of a candidate against its reference computed once per pair of *pixel contents* and shared by
//! all observers (the same images recur in every HIT under other URLs and with other padding bytes).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use image::RgbImage;

use super::metric;
use super::model::Seen;
use crate::participant::Client;

type Cell<T> = Arc<OnceLock<Result<T, String>>>;

/// A decoded image and a hash of its pixels (the cache key).
#[derive(Clone)]
pub struct Picture {
    pub pixels: Arc<RgbImage>,
    pub hash: u64,
}

impl Picture {
    /// Decodes image bytes (any padding chunks are skipped by the decoder).
    pub fn decode(what: &str, bytes: &[u8]) -> Result<Picture, String> {
        let img = image::load_from_memory(bytes)
            .map_err(|e| format!("{what}: cannot decode: {e}"))?
            .to_rgb8();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        img.dimensions().hash(&mut h);
        img.as_raw().hash(&mut h);
        Ok(Picture {
            hash: h.finish(),
            pixels: Arc::new(img),
        })
    }
}

/// The shared cache of scores.
#[derive(Default)]
pub struct Judge {
    scores: Mutex<HashMap<(u64, u64), Cell<Seen>>>,
}

impl Judge {
    pub fn new() -> Arc<Judge> {
        Arc::new(Judge::default())
    }

    /// MS-SSIM of candidate against reference (CPU-bound; call from a blocking thread), computed once per
    /// pair of pixel contents.
    pub fn score_blocking(&self, reference: &Picture, candidate: &Picture) -> Result<Seen, String> {
        let cell = self
            .scores
            .lock()
            .expect("judge cache lock")
            .entry((reference.hash, candidate.hash))
            .or_default()
            .clone();
        cell.get_or_init(|| {
            let ms_ssim = metric::ms_ssim(&reference.pixels, &candidate.pixels)
                .map_err(|e| format!("reference vs candidate: {e}"))?;
            Ok(Seen {
                ms_ssim,
                identical: *reference.pixels == *candidate.pixels,
            })
        })
        .clone()
    }

    /// The score of two decoded pictures, computed on a blocking thread when not cached.
    pub async fn score_pictures(
        self: &Arc<Judge>,
        reference: &Picture,
        candidate: &Picture,
    ) -> Result<Seen, String> {
        let (r, c, me) = (reference.clone(), candidate.clone(), self.clone());
        tokio::task::spawn_blocking(move || me.score_blocking(&r, &c))
            .await
            .map_err(|e| format!("metric task failed: {e}"))?
    }

    /// The score of a candidate whose image (and the reference's) is fetched over HTTP as needed;
    /// `fetched` holds what this observer already downloaded, by URL.
    pub async fn score(
        self: &Arc<Judge>,
        client: &Client,
        fetched: &mut HashMap<String, Picture>,
        reference: &str,
        candidate: &str,
    ) -> Result<Seen, String> {
        for url in [reference, candidate] {
            if !fetched.contains_key(url) {
                let b = client
                    .get_bytes(url)
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let url_owned = url.to_string();
                let p = tokio::task::spawn_blocking(move || Picture::decode(&url_owned, &b))
                    .await
                    .map_err(|e| format!("decode task failed: {e}"))??;
                fetched.insert(url.to_string(), p);
            }
        }
        self.score_pictures(&fetched[reference], &fetched[candidate])
            .await
    }
}
