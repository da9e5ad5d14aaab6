//! Simulated observers over HTTP: N new MTurk-style workers, each doing one whole HIT exactly as a browser
//! does (GET the study page, start the HIT through the `start_hit` server function, GET the reference and
//! the two candidates of every trial, answer every trial through `submit_answer`), deciding by the
//! metric-driven [`ObserverModel`]. At most `concurrency` HITs run at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::judge::Judge;
use super::model::{self, ObserverModel};
use crate::api::Side;
use crate::participant::{self, Acked, Client};

#[derive(Debug, Clone)]
pub struct BotOptions {
    /// Number of observers (each one new worker doing one HIT).
    pub observers: usize,
    /// HITs in progress at once.
    pub concurrency: usize,
    pub seed: u64,
    /// Unique per run: assignment ids are `{run}-a{i}`, worker ids `{run}-w{i}`.
    pub run: String,
    pub model: ObserverModel,
    /// Time an observer takes per trial beyond judging it (ms), e.g. to stay above a study's minimum
    /// response time.
    pub pause_ms: u64,
}

/// What one observer did.
#[derive(Debug, Clone, Default)]
pub struct HitOutcome {
    pub completed: bool,
    pub acked: Vec<Acked>,
    /// Obvious trials (attention checks) seen, and answered wrong.
    pub obvious: usize,
    pub obvious_wrong: usize,
    pub error: Option<String>,
}

/// What the run did, and what the observers saw.
#[derive(Debug, Clone, Default)]
pub struct BotSummary {
    /// Observers that completed their HIT.
    pub hits: usize,
    /// Answers acknowledged by the server.
    pub answers: usize,
    pub obvious: usize,
    /// Obvious trials (attention checks) answered wrong, and HITs with at least one (the server excludes
    /// those HITs).
    pub obvious_wrong: usize,
    pub hits_failed_check: usize,
    pub acked: Vec<Acked>,
    /// One line per observer that failed (request errors).
    pub errors: Vec<String>,
}

/// Observer `i` does one whole HIT.
pub async fn one_hit(
    client: &Client,
    judge: &Arc<Judge>,
    slug: &str,
    opts: &BotOptions,
    i: usize,
) -> HitOutcome {
    let mut out = HitOutcome::default();
    if let Err(e) = hit(client, judge, slug, opts, i, &mut out).await {
        out.error = Some(format!("observer {i}: {e}"));
    }
    out
}

async fn hit(
    client: &Client,
    judge: &Arc<Judge>,
    slug: &str,
    opts: &BotOptions,
    i: usize,
    out: &mut HitOutcome,
) -> Result<(), String> {
    let (a, w) = (format!("{}-a{i}", opts.run), format!("{}-w{i}", opts.run));
    client
        .page(&participant::mturk_page(slug, &a, &w))
        .await
        .map_err(|e| format!("study page: {e}"))?;
    let view = client
        .start(slug, &participant::mturk_params(&a, &w))
        .await
        .map_err(|e| format!("start: {e}"))?;
    if view.trials.is_empty() {
        return Err("the HIT has no trials".into());
    }
    let mut stream = model::stream(opts.seed, i);
    let mut fetched = HashMap::new();
    for t in view.trials.iter().skip(view.answered as usize) {
        let r = &t.reference.url;
        let left = judge.score(client, &mut fetched, r, &t.left.url).await?;
        let right = judge.score(client, &mut fetched, r, &t.right.url).await?;
        let d = opts.model.decide(left, right, &mut stream);
        let side = if d.left { Side::Left } else { Side::Right };
        if opts.pause_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(opts.pause_ms)).await;
        }
        let after = client
            .answer(&view.key, t.position, side, d.rt_ms)
            .await
            .map_err(|e| format!("answer trial {}: {e}", t.position))?;
        out.acked.push(Acked {
            key: view.key.clone(),
            position: t.position,
            side,
        });
        out.obvious += usize::from(d.obvious);
        out.obvious_wrong += usize::from(d.obvious_wrong);
        out.completed = after.completion.is_some();
    }
    Ok(())
}

/// Runs `opts.observers` observers against the server of `client` (images judged through `judge`), at most `opts.concurrency` at once;
/// `on_hit` is called after each observer's HIT (progress bars).
pub async fn run(
    client: &Client,
    judge: &Arc<Judge>,
    slug: &str,
    opts: &BotOptions,
    on_hit: Arc<dyn Fn() + Send + Sync>,
) -> BotSummary {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..opts.concurrency.clamp(1, opts.observers.max(1)) {
        let (client, judge, next, on_hit) =
            (client.clone(), judge.clone(), next.clone(), on_hit.clone());
        let (slug, opts) = (slug.to_string(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.observers {
                    break;
                }
                done.push((i, one_hit(&client, &judge, &slug, &opts, i).await));
                on_hit();
            }
            done
        }));
    }
    let mut outcomes = Vec::new();
    let mut summary = BotSummary::default();
    for t in tasks {
        match t.await {
            Ok(v) => outcomes.extend(v),
            Err(e) => summary.errors.push(format!("observer task failed: {e}")),
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    for (_, o) in outcomes {
        summary.hits += usize::from(o.completed);
        summary.answers += o.acked.len();
        summary.obvious += o.obvious;
        summary.obvious_wrong += o.obvious_wrong;
        summary.hits_failed_check += usize::from(o.obvious_wrong > 0);
        summary.acked.extend(o.acked);
        summary.errors.extend(o.error);
    }
    summary
}
