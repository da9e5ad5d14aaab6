//! `jndlab-load`: N concurrent simulated participants doing whole HITs over HTTP against a running server
//! (`jndlab-app serve`): each fetches its study page, starts its HIT, answers every trial, fetches the page
//! again. Reports answers/s, p50/p99 latency of the answer POST and of the study page, errors, and (with
//! --db or --database-url) lost answers: acknowledged answers missing from the database. `--static-path`
//! instead times plain GETs of one file (e.g. served by nginx) with the same concurrency: the ceiling of
//! the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use app::api::Side;
use app::participant::{self, Client};
use app::server::db;

#[derive(Parser)]
#[command(
    name = "jndlab-load",
    version,
    about = "Load generator: concurrent simulated participants doing whole HITs against a running jndlab-app"
)]
struct Cli {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Study slug (the study must be live).
    #[arg(long, default_value = "demo")]
    study: String,
    /// Concurrent participants (each does one whole HIT).
    #[arg(long, short = 'n', default_value_t = 50)]
    participants: usize,
    /// Prefix of the simulated assignment/worker ids (make it unique per run).
    #[arg(long, default_value = "load")]
    run: String,
    /// SQLite file of the server, to count lost answers afterwards.
    #[arg(long)]
    db: Option<std::path::PathBuf>,
    /// PostgreSQL URL of the server, to count lost answers afterwards.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Ceiling mode: GET this path (e.g. /static.html from nginx) `--requests-per-client` times per client.
    #[arg(long)]
    static_path: Option<String>,
    /// Think time between a participant's answers in ms (0: answer back to back, the hardest case; people
    /// take seconds per trial).
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Requests per client in ceiling mode (about the requests of one HIT).
    #[arg(long, default_value_t = 12)]
    requests_per_client: usize,
}

#[derive(Default)]
struct Samples {
    answer: Vec<Duration>,
    page: Vec<Duration>,
    acked: Vec<participant::Acked>,
    errors: Vec<String>,
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

async fn one_participant(
    c: Client,
    slug: String,
    run: String,
    i: usize,
    think: Duration,
    bar: ProgressBar,
) -> Samples {
    let mut s = Samples::default();
    let (a, w) = (format!("{run}-a{i}"), format!("{run}-w{i}"));
    let page = participant::mturk_page(&slug, &a, &w);
    match c.page(&page).await {
        Ok(d) => s.page.push(d),
        Err(e) => s.errors.push(format!("page: {e}")),
    }
    let hit = match c.start(&slug, &participant::mturk_params(&a, &w)).await {
        Ok(h) => h,
        Err(e) => {
            s.errors.push(format!("start: {e}"));
            return s;
        }
    };
    for tr in &hit.trials {
        if !think.is_zero() {
            // Spread the first answers out as real arrivals are, then a steady pace.
            let jitter = (i as u64 * 7919 + tr.position as u64) % think.as_millis().max(1) as u64;
            tokio::time::sleep(think / 2 + Duration::from_millis(jitter)).await;
        }
        let side = if (tr.position as usize + i).is_multiple_of(2) {
            Side::Left
        } else {
            Side::Right
        };
        let t = Instant::now();
        match c.answer(&hit.key, tr.position, side, 800).await {
            Ok(_) => {
                s.answer.push(t.elapsed());
                s.acked.push(participant::Acked {
                    key: hit.key.clone(),
                    position: tr.position,
                    side,
                });
            }
            Err(e) => s.errors.push(format!("answer: {e}")),
        }
        bar.inc(1);
    }
    match c.page(&page).await {
        Ok(d) => s.page.push(d),
        Err(e) => s.errors.push(format!("page: {e}")),
    }
    s
}

async fn ceiling(cli: &Cli, path: &str) -> anyhow::Result<()> {
    let c = Client::new(&cli.url);
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.participants {
        let (c, path, n) = (c.clone(), path.to_string(), cli.requests_per_client);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            for _ in 0..n {
                match c.page(&path).await {
                    Ok(d) => lat.push(d),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    done.store(lat.len() as u64, Ordering::Relaxed);
    println!(
        "static {path}: {} clients, {} requests in {secs:.2} s = {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, errors {errors}",
        cli.participants,
        lat.len(),
        lat.len() as f64 / secs,
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    app::server::init_tracing();
    let cli = Cli::parse();
    if let Some(path) = &cli.static_path {
        return ceiling(&cli, path).await;
    }
    let c = Client::new(&cli.url);
    c.page("/healthz")
        .await
        .with_context(|| format!("{}: server not reachable", cli.url))?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} answers {pos} ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    tracing::info!(
        "{} participants against {} (study {})",
        cli.participants,
        cli.url,
        cli.study
    );
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..cli.participants {
        tasks.push(tokio::spawn(one_participant(
            c.clone(),
            cli.study.clone(),
            cli.run.clone(),
            i,
            Duration::from_millis(cli.think_ms),
            bar.clone(),
        )));
    }
    let mut all = Samples::default();
    for t in tasks {
        let s = t.await?;
        all.answer.extend(s.answer);
        all.page.extend(s.page);
        all.acked.extend(s.acked);
        all.errors.extend(s.errors);
    }
    let secs = t0.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let lost = match (&cli.database_url, &cli.db) {
        (Some(url), _) => {
            Some(participant::lost_answers(&db::connect(url).await?, &all.acked).await?)
        }
        (None, Some(path)) => {
            Some(participant::lost_answers(&db::open(path).await?, &all.acked).await?)
        }
        _ => None,
    };
    println!(
        "{} participants (think {} ms): {} answers in {secs:.2} s = {:.0} answers/s; answer POST p50 {:.1} ms p99 {:.1} ms; \
         study page p50 {:.1} ms p99 {:.1} ms; errors {}; lost answers {}",
        cli.participants,
        cli.think_ms,
        all.acked.len(),
        all.acked.len() as f64 / secs,
        pct(&mut all.answer, 0.5),
        pct(&mut all.answer, 0.99),
        pct(&mut all.page, 0.5),
        pct(&mut all.page, 0.99),
        all.errors.len(),
        lost.map(|n| n.to_string())
            .unwrap_or_else(|| "not checked (no --db)".into())
    );
    for e in all.errors.iter().take(5) {
        eprintln!("  error: {e}");
    }
    Ok(())
}
