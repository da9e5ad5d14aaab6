//! `jndlab-app`: the study platform's server and command-line tools.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use app::observer::judge::Judge;
use app::observer::model::ObserverModel;
use app::observer::{bots, expected};
use app::server::export::{self, Format};
use app::server::results::{ObserverUnit, ResultsOptions};
use app::server::{AppState, auth, bundle, db, study, tokens, web};

#[derive(Parser)]
#[command(
    name = "jndlab-app",
    version,
    about = "Crowdsourced pairwise-comparison image studies (MTurk, Prolific, direct links)"
)]
struct Cli {
    /// SQLite database file (created if missing; WAL mode).
    #[arg(
        long,
        env = "JNDLAB_DB",
        default_value = "jndlab-data/jndlab.db",
        global = true
    )]
    db: PathBuf,
    /// PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DB); when set it is used instead of --db, so several
    /// app instances can share one database behind a load balancer.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Folder for imported images (studies/{id}/...).
    #[arg(
        long,
        env = "JNDLAB_DATA_DIR",
        default_value = "jndlab-data",
        global = true
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (participant pages under /s/{study}, admin pages under /admin).
    Serve(ServeArgs),
    /// Import a study bundle (a folder or .zip with bundle.json, see docs/bundle.md) as a draft study.
    Import(ImportArgs),
    /// Manage admin accounts.
    Admin(AdminArgs),
    /// Change a study's state (draft -> live -> paused -> closed).
    State(StateArgs),
    /// Export a study's results (the data of the admin results page) to stdout or a file.
    Export(ExportArgs),
    /// Fill a study with SIMULATED observers over HTTP: each a new MTurk-style worker doing one whole HIT
    /// like a browser (study page, start, images, answers), choosing by an MS-SSIM-driven Thurstonian model:
    /// quality q = -(1 - MS-SSIM(reference, candidate)) / JND-STEP in JND, left chosen with probability
    /// Phi((q_left - q_right) / 1.4826), so 1 JND = 75%; attention checks (one side identical to the
    /// reference) answered wrong with probability CHECK-FAIL-RATE. Prints HITs, answers, failed checks and
    /// the model's expected score per condition. Refuses studies not marked synthetic unless --force.
    Simulate(SimulateArgs),
    /// Manage API tokens for the results JSON API (GET /api/studies/{id}/results).
    Token(TokenArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "JNDLAB_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Folder with the compiled browser code (pkg/app.js, pkg/app.wasm, pkg/app.css), made by scripts/build-app.sh.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    site_root: PathBuf,
    /// URL participants use to reach this server (default http://ADDR); https makes admin cookies Secure.
    #[arg(long, env = "JNDLAB_PUBLIC_URL")]
    public_url: Option<String>,
    /// Import the demo bundle (once: real outputs of the demo pipeline, see assets/demo/README.md) and set it
    /// live, with 1000 answers wanted per pair and scene so that trying it never fills it.
    #[arg(long)]
    demo: bool,
    /// Where the demo bundle is.
    #[arg(long, default_value = "assets/demo")]
    demo_bundle: PathBuf,
    /// HIT starts allowed per client address and minute (sustained); protects the database from floods
    /// of forged participants.
    #[arg(long, default_value_t = 30)]
    starts_per_minute: u32,
    /// HIT starts allowed from one address in a burst before the sustained rate applies.
    #[arg(long, default_value_t = 10)]
    start_burst: u32,
    /// Behind a reverse proxy: the header holding the client address (e.g. X-Forwarded-For; its last
    /// address is used). Never set this without such a proxy: clients could then choose their address.
    #[arg(long)]
    client_ip_header: Option<String>,
    /// Seed the trial assignment (reproducible simulations); by default it is random.
    #[arg(long)]
    assign_seed: Option<u64>,
}

#[derive(Args)]
struct ImportArgs {
    /// Bundle folder or .zip file.
    path: PathBuf,
    /// Set the study live right away.
    #[arg(long)]
    live: bool,
    /// Answers wanted per pair and scene, instead of the bundle's setting (the study completes once
    /// every pair-and-scene item has this many valid answers).
    #[arg(long)]
    repetitions: Option<i64>,
    /// Minimum response time (ms) of the quality rules, instead of the bundle's setting (0 for
    /// simulated observers that answer at once).
    #[arg(long)]
    min_response_ms: Option<i64>,
}

#[derive(Args)]
struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Args)]
struct StateArgs {
    /// Study slug.
    slug: String,
    /// New state: live, paused or closed.
    state: String,
}

#[derive(Args)]
struct ExportArgs {
    /// Study slug or numeric id.
    study: String,
    /// What to export.
    #[arg(long, value_enum)]
    format: Format,
    /// Output file, written atomically (a failed export leaves no partial file); stdout when omitted.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Also use the answers of HITs excluded by a failed attention check (left out by default).
    #[arg(long)]
    include_excluded: bool,
    /// Who is one observer (for the bootstrap, the outlier analysis and the CSV `observer` column).
    #[arg(long, value_enum, default_value = "hit")]
    observer: ObserverUnit,
    /// Bootstrap replicates for the 95% CIs (0: no CIs); used by jnd-csv and jnd-json.
    #[arg(long, default_value_t = app::server::results::DEFAULT_REPLICATES)]
    replicates: usize,
    /// Seed of the bootstrap resampling (the same seed gives the same CIs).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct SimulateArgs {
    /// Study slug or numeric id (the study must be live).
    study: String,
    /// Number of observers, each a new worker doing one whole HIT.
    #[arg(long, default_value_t = 100)]
    observers: usize,
    /// Base URL of a running server (e.g. http://127.0.0.1:3000) serving this database; by default the
    /// app's own server is started in-process on 127.0.0.1 (an ephemeral port) on the same database
    /// and --data-dir (or, when that lacks the study's images, the folder of the --db file), and
    /// stopped afterwards.
    #[arg(long)]
    url: Option<String>,
    /// MS-SSIM difference that equals 1 JND (smaller: the observers are more sensitive).
    #[arg(long, default_value_t = 0.01)]
    jnd_step: f64,
    /// Probability of answering an attention check wrong (each failed check excludes its HIT).
    #[arg(long, default_value_t = 0.05)]
    check_fail_rate: f64,
    /// Seed of the observers' choices (observer i has its own stream: the same seed gives the same
    /// choices for the same trials, whatever the scheduling).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// HITs in progress at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Milliseconds each observer waits per trial before answering; by default 50 ms more than the
    /// study's minimum response time, so the simulated answers are not flagged as too fast.
    #[arg(long)]
    pause_ms: Option<u64>,
    /// Also write simulated answers into a study that is not marked synthetic.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (only this once; it is stored hashed).
    Create {
        /// What the token is for (shown in the list).
        #[arg(long)]
        label: String,
    },
    /// List the tokens (ids and labels, not the secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id (from `token list`).
        id: i64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin (or reset the password of an existing one).
    Create {
        #[arg(long, default_value = "admin")]
        username: String,
        /// Password (at least 8 characters); a random one is generated and printed if omitted.
        #[arg(long, env = "JNDLAB_ADMIN_PASSWORD")]
        password: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    app::server::init_tracing();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Settings given on the command line instead of the bundle's.
#[derive(Debug, Default, Clone, Copy)]
struct Overrides {
    repetitions: Option<i64>,
    min_response_ms: Option<i64>,
}

async fn import(
    pool: &db::Db,
    data_dir: &Path,
    path: &Path,
    live: bool,
    o: Overrides,
) -> anyhow::Result<bundle::Imported> {
    let mut src = bundle::Source::open(path)?;
    let imp = bundle::import(pool, data_dir, &mut src).await?;
    if o.repetitions.is_some() || o.min_response_ms.is_some() {
        let s = study::by_id(pool, imp.study_id)
            .await?
            .context("the imported study vanished")?;
        let mut settings = s.settings.clone();
        settings.repetitions = o.repetitions.unwrap_or(settings.repetitions);
        settings.rules.min_response_ms =
            o.min_response_ms.unwrap_or(settings.rules.min_response_ms);
        study::update_settings(pool, imp.study_id, &settings).await?;
    }
    if live {
        study::set_state(pool, imp.study_id, study::StudyState::Live).await?;
    }
    Ok(imp)
}

/// A study by slug, or by numeric id when no slug matches.
async fn find_study(pool: &db::Db, key: &str) -> anyhow::Result<study::Study> {
    if let Some(s) = study::by_slug(pool, key).await? {
        return Ok(s);
    }
    if let Ok(id) = key.parse::<i64>()
        && let Some(s) = study::by_id(pool, id).await?
    {
        return Ok(s);
    }
    let known: Vec<String> = study::list(pool)
        .await?
        .into_iter()
        .map(|s| s.slug)
        .collect();
    anyhow::bail!(
        "study: no study \"{key}\" (known: {})",
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    )
}

/// The PostgreSQL database of `--database-url`, else the SQLite file of `--db`.
async fn open_db(target: &(Option<String>, PathBuf)) -> anyhow::Result<db::Db> {
    match target.0.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => db::connect(url).await,
        None => db::open(&target.1).await,
    }
}

/// Where the data lives, for messages (passwords left out).
fn db_label(target: &(Option<String>, PathBuf)) -> String {
    match target.0.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => db::redact(url),
        None => target.1.display().to_string(),
    }
}

/// The data folder holding study `study_id`'s images: `--data-dir`, else (when that lacks them) the SQLite
/// file's folder, the usual `--db DIR/x.db --data-dir DIR` layout.
async fn images_dir(
    pool: &db::Db,
    study_id: i64,
    data_dir: &Path,
    target: &(Option<String>, PathBuf),
) -> anyhow::Result<PathBuf> {
    let file: Option<(String,)> =
        sqlx::query_as("SELECT file_name FROM images WHERE study_id = $1 ORDER BY id LIMIT 1")
            .bind(study_id)
            .fetch_optional(pool)
            .await?;
    let Some((file,)) = file else {
        return Ok(data_dir.to_path_buf());
    };
    let has = |d: &Path| bundle::study_dir(d, study_id).join(&file).is_file();
    if has(data_dir) {
        return Ok(data_dir.to_path_buf());
    }
    if target.0.as_deref().is_none_or(str::is_empty)
        && let Some(parent) = target.1.parent()
        && has(parent)
    {
        return Ok(parent.to_path_buf());
    }
    anyhow::bail!(
        "--data-dir {}: the images of study {study_id} are not there; pass the --data-dir the study was imported with",
        data_dir.display()
    )
}

/// What every subcommand needs from the global options.
struct Ctx {
    target: (Option<String>, PathBuf),
    data_dir: PathBuf,
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        target: (cli.database_url.clone(), cli.db.clone()),
        data_dir: cli.data_dir.clone(),
    };
    match cli.command {
        Command::Export(a) => cmd_export(a, &ctx).await,
        Command::Simulate(a) => cmd_simulate(a, &ctx).await,
        Command::Token(a) => cmd_token(a, &ctx).await,
        Command::Import(a) => cmd_import(a, &ctx).await,
        Command::State(a) => cmd_state(a, &ctx).await,
        Command::Admin(a) => cmd_admin(a, &ctx).await,
        Command::Serve(a) => cmd_serve(a, &ctx).await,
    }
}

async fn cmd_export(args: ExportArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let ExportArgs {
        study: key,
        format,
        output,
        include_excluded,
        observer,
        replicates,
        seed,
    } = args;
    let pool = open_db(&ctx.target).await?;
    let s = find_study(&pool, &key).await?;
    let opts = ResultsOptions {
        observer,
        include_excluded,
        replicates,
        seed,
    };
    let bar = if format.needs_results() {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} bootstrap replicates ({per_sec}) {elapsed}",
            )
            .expect("valid template"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let tick = bar.clone();
    let bytes = export::export(
        &pool,
        s.id,
        format,
        &opts,
        std::sync::Arc::new(move || tick.inc(1)),
    )
    .await?;
    bar.finish_and_clear();
    match output {
        Some(path) => {
            export::write_atomically(&path, &bytes)?;
            eprintln!(
                "wrote {} of study \"{}\" to {}",
                format.as_str(),
                s.slug,
                path.display()
            );
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&bytes)
                .context("writing to stdout")?;
        }
    }
    Ok(())
}

async fn cmd_simulate(args: SimulateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let SimulateArgs {
        study: key,
        observers,
        url,
        jnd_step,
        check_fail_rate,
        seed,
        concurrency,
        pause_ms,
        force,
    } = args;
    let pool = open_db(&ctx.target).await?;
    let s = find_study(&pool, &key).await?;
    if !s.synthetic && !force {
        anyhow::bail!(
            "study \"{}\" is not a synthetic study: simulated answers would mix with real ones (pass --force to do it anyway)",
            s.slug
        );
    }
    let model = ObserverModel {
        jnd_step,
        check_fail_rate,
    };
    model.validate()?;
    let (base, server) = match url {
        Some(u) => (u, None),
        None => {
            let data_dir = images_dir(&pool, s.id, &ctx.data_dir, &ctx.target).await?;
            let (addr, handle) = web::spawn_local(pool.clone(), data_dir).await?;
            (format!("http://{addr}"), Some(handle))
        }
    };
    let opts = bots::BotOptions {
        observers,
        concurrency,
        seed,
        run: format!("sim{}-{seed}", db::now_ms()),
        model,
        pause_ms: pause_ms.unwrap_or(s.settings.rules.min_response_ms as u64 + 50),
    };
    let bar = indicatif::ProgressBar::new(observers as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} simulated HITs over HTTP {elapsed}",
        )
        .expect("valid template"),
    );
    let tick = bar.clone();
    let client = app::participant::Client::new(&base);
    let judge = Judge::new();
    let sum = bots::run(
        &client,
        &judge,
        &s.slug,
        &opts,
        std::sync::Arc::new(move || tick.inc(1)),
    )
    .await;
    bar.finish_and_clear();
    let data_dir = images_dir(&pool, s.id, &ctx.data_dir, &ctx.target).await?;
    let expected = expected::expected_scores(&pool, &data_dir, s.id, &judge, &model).await;
    if let Some(h) = server {
        h.abort();
    }
    println!(
        "study {}: {} observers over {base}: {} HITs completed, {} answers, {} attention checks answered wrong ({} HITs excluded)",
        s.slug, observers, sum.hits, sum.answers, sum.obvious_wrong, sum.hits_failed_check
    );
    println!("model's expected score per condition (JND, mean over scenes, centred):");
    for e in expected? {
        println!("  {:<24} {:>8.3}", e.condition, e.centred);
    }
    if !sum.errors.is_empty() {
        for e in sum.errors.iter().take(10) {
            eprintln!("  {e}");
        }
        anyhow::bail!("{} observers failed", sum.errors.len());
    }
    Ok(())
}

async fn cmd_token(args: TokenArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let TokenArgs { command } = args;
    let pool = open_db(&ctx.target).await?;
    match command {
        TokenCommand::Create { label } => {
            let t = tokens::create(&pool, &label, "cli").await?;
            println!("{t}");
        }
        TokenCommand::List => {
            for t in tokens::list(&pool).await? {
                println!(
                    "{}\t{}\tcreated by {}\tlast used {}",
                    t.id,
                    t.label,
                    t.created_by,
                    if t.last_used_at == 0 {
                        "never".to_string()
                    } else {
                        t.last_used_at.to_string()
                    }
                );
            }
        }
        TokenCommand::Revoke { id } => {
            tokens::revoke(&pool, id).await?;
            println!("revoked API token {id}");
        }
    }
    Ok(())
}

async fn cmd_import(args: ImportArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let ImportArgs {
        path,
        live,
        repetitions,
        min_response_ms,
    } = args;
    let pool = open_db(&ctx.target).await?;
    let o = Overrides {
        repetitions,
        min_response_ms,
    };
    let imp = import(&pool, &ctx.data_dir, &path, live, o).await?;
    println!(
        "imported {} as study \"{}\" (id {}): {} conditions, {} scenes, {} pair-and-scene items; state {}",
        path.display(),
        imp.slug,
        imp.study_id,
        imp.conditions,
        imp.scenes,
        imp.design_items,
        if live { "live" } else { "draft" }
    );
    Ok(())
}

async fn cmd_state(args: StateArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let StateArgs { slug, state } = args;
    let pool = open_db(&ctx.target).await?;
    let s = study::by_slug(&pool, &slug)
        .await?
        .with_context(|| format!("no study \"{slug}\""))?;
    study::set_state(&pool, s.id, study::StudyState::parse(&state)?).await?;
    println!("study {slug} is now {state}");
    Ok(())
}

async fn cmd_admin(args: AdminArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let AdminArgs {
        command: AdminCommand::Create { username, password },
    } = args;
    let pool = open_db(&ctx.target).await?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(|| db::random_token(16));
    auth::create_admin(&pool, &username, &password).await?;
    if generated {
        println!("admin \"{username}\" created; password: {password}");
    } else {
        println!("admin \"{username}\" created");
    }
    Ok(())
}

async fn cmd_serve(args: ServeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let ServeArgs {
        addr,
        site_root,
        public_url,
        demo,
        demo_bundle,
        starts_per_minute,
        start_burst,
        client_ip_header,
        assign_seed,
    } = args;
    if !site_root.join("pkg").join("app.wasm").exists() {
        anyhow::bail!(
            "{}: no pkg/app.wasm; build the browser code first with scripts/build-app.sh (or pass --site-root)",
            site_root.display()
        );
    }
    let pool = open_db(&ctx.target).await?;
    let public_url = public_url.unwrap_or_else(|| format!("http://{addr}"));
    let mut demo_slug = None;
    if demo {
        let slug = match study::by_slug(&pool, "demo").await? {
            Some(s) => s.slug,
            // The demo is for trying the platform: its design never fills.
            None => {
                let o = Overrides {
                    repetitions: Some(1000),
                    min_response_ms: None,
                };
                import(&pool, &ctx.data_dir, &demo_bundle, true, o)
                    .await?
                    .slug
            }
        };
        demo_slug = Some(slug);
    }
    let mut login = None;
    if auth::admin_count(&pool).await? == 0 {
        let password = db::random_token(16);
        auth::create_admin(&pool, "admin", &password).await?;
        login = Some(password);
    }
    let client_ip_header = client_ip_header
        .map(|h| {
            axum::http::HeaderName::try_from(h.as_str())
                .with_context(|| format!("--client-ip-header: \"{h}\" is not a header name"))
        })
        .transpose()?;
    let mut state = AppState::new(
        pool,
        ctx.data_dir.clone(),
        web::leptos_options(&site_root, addr),
        public_url.clone(),
    );
    state.limiter = app::server::limits::Limiter::new(app::server::limits::Limits {
        starts_per_minute,
        start_burst,
        client_ip_header,
    });
    state.assign_seed = assign_seed;
    println!(
        "jndlab study platform listening on http://{addr}  (database {})",
        db_label(&ctx.target)
    );
    if let Some(slug) = demo_slug {
        println!("  participant URL (demo study): {public_url}/s/{slug}");
        println!(
            "  MTurk-style test URL: {public_url}/s/{slug}?assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=https://workersandbox.mturk.com"
        );
    }
    println!("  admin URL: {public_url}/admin");
    match login {
        Some(p) => println!("  admin login (shown once): user \"admin\", password \"{p}\""),
        None => println!(
            "  admin login: existing account (reset with `jndlab-app admin create --username admin`)"
        ),
    }
    web::serve(state, addr).await
}
