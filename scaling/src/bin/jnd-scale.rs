//! `jnd-scale`: scale pairwise comparisons into JND units (pwcmp-compatible).

use clap::{ArgGroup, Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use scaling::{
    Bootstrap, BootstrapOptions, Comparisons, CountMatrix, Disconnected, ObserverFit, PlotPoint,
    Prior, Regularization, ScaleError, ScaleOptions, Scaling, Significance, bootstrap,
    jnd_chart_svg, outliers, scale, significance,
};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Scale pairwise-comparison data into JND units (1 JND = 75% of observers prefer one condition).
///
/// Thurstone case V maximum-likelihood scaling exactly as the MATLAB toolbox pwcmp's `pw_scale`
/// (sigma = 1.4826, its "gaussian" prior and "mean0"/"fix0" regularisation), computed in the log
/// domain: large counts work, and designs without a finite optimum (one group of conditions won every
/// comparison) are reported instead of scaled.
///
/// Exit codes: 0 success, 2 bad input or usage, 3 the data have no finite optimum or cannot be scaled.
#[derive(Parser, Debug)]
#[command(name = "jnd-scale", version, group(ArgGroup::new("input").required(true).args(["matrix", "comparisons"])))]
struct Cli {
    /// Count matrix CSV: N rows of N non-negative integers, row i column j = times condition i was
    /// chosen over condition j (diagonal ignored); an optional first row of condition names.
    #[arg(long, value_name = "FILE")]
    matrix: Option<PathBuf>,

    /// Long-format CSV, one answer per row, with header `observer,scene,condition_A,condition_B,is_A_selected`
    /// (pwcmp's table format; `scene` and `session` optional; is_A_selected 0/1).
    #[arg(long, value_name = "FILE")]
    comparisons: Option<PathBuf>,

    /// Condition names for --matrix, comma-separated, in row order (overrides a header row).
    #[arg(long, value_delimiter = ',', requires = "matrix")]
    names: Option<Vec<String>>,

    /// pwcmp's prior: `gaussian` (pwcmp's default) or `none` (plain maximum likelihood).
    #[arg(long, value_enum, default_value_t = Prior::Gaussian)]
    prior: Prior,

    /// How the free offset is fixed: `mean0` (scores average 0, pwcmp's default) or `fix0` (first condition = 0).
    #[arg(long, value_enum, default_value_t = Regularization::Mean0)]
    regularization: Regularization,

    /// Disconnected comparison graphs: `join` them as pwcmp does (a fake 1:1 comparison between the best
    /// condition of every two components, with a warning) or `error`.
    #[arg(long, value_enum, default_value_t = Disconnected::Join)]
    disconnected: Disconnected,

    /// Scale every scene separately (needs a `scene` column) instead of pooling all scenes.
    #[arg(long, requires = "comparisons")]
    per_scene: bool,

    /// Bootstrap confidence intervals from this many observer resamples (with --comparisons); 0 = none.
    #[arg(long, value_name = "B", default_value_t = 0, requires = "comparisons")]
    bootstrap: usize,

    /// Seed of the bootstrap resampling (same seed, same intervals on any number of threads).
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Significance level: the CI is the [alpha/2, 1-alpha/2] percentile interval and the
    /// significance matrix flags two-tailed p < alpha.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,

    /// Observer outlier analysis (leave-one-observer-out likelihood, pwcmp's dist_L; flagged at >= 1.5).
    #[arg(long, requires = "comparisons")]
    outliers: bool,

    /// Ignore columns of --comparisons other than the known ones instead of rejecting the file.
    #[arg(long, requires = "comparisons")]
    allow_extra_columns: bool,

    /// Write an SVG chart of the scores (with CI error bars when bootstrapped) to this file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,

    /// Output format on stdout (or --output).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,

    /// Write the result to this file instead of stdout (written only when everything succeeded).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,

    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Csv,
}

/// The result of scaling one set of data (pooled, or one scene).
#[derive(Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    scene: Option<String>,
    conditions: Vec<String>,
    jnd: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci_low: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci_high: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    std: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    covariance: Option<Vec<Vec<f64>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    significance: Option<Significance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outliers: Option<Vec<ObserverFit>>,
    warnings: Vec<String>,
    objective: f64,
    iterations: u64,
    evaluations: u64,
    comparisons: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    observers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bootstrap_replicates: Option<usize>,
}

#[derive(Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    pooled: Option<&'a Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenes: Option<&'a [Report]>,
    options: ScaleOptions,
    seconds: f64,
}

enum Failure {
    Input(String),
    Unscalable(String),
}

impl From<ScaleError> for Failure {
    fn from(e: ScaleError) -> Self {
        match e {
            ScaleError::Input { .. } | ScaleError::Invalid(_) => Failure::Input(e.to_string()),
            _ => Failure::Unscalable(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JNDLAB_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("jnd-scale: error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Unscalable(msg)) => {
            eprintln!("jnd-scale: cannot scale: {msg}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let started = Instant::now();
    if !(cli.alpha > 0.0 && cli.alpha < 1.0) {
        return Err(Failure::Input(format!(
            "--alpha must be between 0 and 1, got {}",
            cli.alpha
        )));
    }
    if cli.bootstrap == 1 {
        return Err(Failure::Input(
            "--bootstrap needs at least 2 replicates (or 0 for none)".into(),
        ));
    }
    let options = ScaleOptions {
        prior: cli.prior,
        regularization: cli.regularization,
        disconnected: cli.disconnected,
    };
    let (pooled, scenes) = if let Some(path) = &cli.matrix {
        let mut d = CountMatrix::read_csv(open(path)?, &path.display().to_string())?;
        if let Some(names) = &cli.names {
            d = d
                .with_names(names.clone())
                .map_err(|e| Failure::Input(format!("--names: {e}")))?;
        }
        let fit = scale(&d, &options)?;
        (
            Some(report(None, d.names().to_vec(), d.total(), fit, None)),
            None,
        )
    } else {
        let path = cli.comparisons.as_ref().expect("clap requires one input");
        let data = Comparisons::read_csv(
            open(path)?,
            &path.display().to_string(),
            cli.allow_extra_columns,
        )?;
        if cli.per_scene {
            if data.scenes.is_empty() {
                return Err(Failure::Input(format!(
                    "{}: --per-scene needs a 'scene' column",
                    path.display()
                )));
            }
            let reports = data
                .scenes
                .iter()
                .map(|s| scale_comparisons(cli, &options, &data.scene(s), Some(s.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            (None, Some(reports))
        } else {
            (Some(scale_comparisons(cli, &options, &data, None)?), None)
        }
    };

    // Everything is computed: only now are files written.
    if let Some(plot) = &cli.plot {
        let svgs: Vec<String> = pooled
            .iter()
            .chain(scenes.iter().flatten())
            .map(|r| chart(r).map_err(|e| Failure::Unscalable(format!("plot: {e}"))))
            .collect::<Result<_, _>>()?;
        write_atomically(plot, svgs.join("\n").as_bytes())?;
    }
    let text = match cli.format {
        Format::Json => {
            let out = Output {
                pooled: pooled.as_ref(),
                scenes: scenes.as_deref(),
                options,
                seconds: started.elapsed().as_secs_f64(),
            };
            serde_json::to_string_pretty(&out).expect("serialisable") + "\n"
        }
        Format::Csv => to_csv(pooled.iter().chain(scenes.iter().flatten())),
    };
    for w in pooled
        .iter()
        .chain(scenes.iter().flatten())
        .flat_map(|r| &r.warnings)
    {
        eprintln!("jnd-scale: warning: {w}");
    }
    match &cli.output {
        Some(path) => write_atomically(path, text.as_bytes()),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| Failure::Input(format!("stdout: {e}"))),
    }
}

fn scale_comparisons(
    cli: &Cli,
    options: &ScaleOptions,
    data: &Comparisons,
    scene: Option<String>,
) -> Result<Report, Failure> {
    let counts = data.observer_counts();
    let total = counts.total();
    let n_obs = counts.observers.len();
    let mut rep = if cli.bootstrap > 0 {
        let bar = progress(
            cli,
            cli.bootstrap as u64,
            scene.as_deref().unwrap_or("bootstrap"),
        );
        let boot = BootstrapOptions {
            replicates: cli.bootstrap,
            alpha: cli.alpha,
            seed: cli.seed,
        };
        let result = bootstrap(&counts.matrices, options, &boot, &|| bar.inc(1))?;
        bar.finish_and_clear();
        let fit = result.fit.clone();
        report(
            scene,
            data.conditions.clone(),
            total.total(),
            fit,
            Some((result, cli.alpha)),
        )
    } else {
        report(
            scene,
            data.conditions.clone(),
            total.total(),
            scale(&total, options)?,
            None,
        )
    };
    rep.observers = Some(n_obs);
    if cli.outliers {
        if n_obs < 3 {
            return Err(Failure::Input(format!(
                "--outliers needs at least 3 observers, got {n_obs}"
            )));
        }
        rep.outliers = Some(outliers(&counts.observers, &counts.matrices, options)?);
    }
    Ok(rep)
}

fn report(
    scene: Option<String>,
    conditions: Vec<String>,
    comparisons: f64,
    fit: Scaling,
    boot: Option<(Bootstrap, f64)>,
) -> Report {
    let mut r = Report {
        scene,
        conditions,
        jnd: fit.jnd,
        ci_low: None,
        ci_high: None,
        std: None,
        covariance: None,
        significance: None,
        outliers: None,
        warnings: fit.warnings,
        objective: fit.objective,
        iterations: fit.iterations,
        evaluations: fit.evaluations,
        comparisons: comparisons as u64,
        observers: None,
        bootstrap_replicates: None,
    };
    if let Some((b, alpha)) = boot {
        r.significance = Some(significance(&r.jnd, &b.covariance, alpha));
        r.warnings = b.warnings;
        r.ci_low = Some(b.ci_low);
        r.ci_high = Some(b.ci_high);
        r.std = Some(b.std);
        r.covariance = Some(b.covariance);
        r.bootstrap_replicates = Some(b.replicates_used);
    }
    r
}

fn chart(r: &Report) -> Result<String, String> {
    let points: Vec<PlotPoint> = (0..r.conditions.len())
        .map(|i| PlotPoint {
            name: &r.conditions[i],
            jnd: r.jnd[i],
            ci: r
                .ci_low
                .as_ref()
                .zip(r.ci_high.as_ref())
                .map(|(l, h)| (l[i], h[i])),
        })
        .collect();
    let title = match &r.scene {
        Some(s) => format!("JND per condition, scene {s}"),
        None => "JND per condition".to_string(),
    };
    jnd_chart_svg(&title, &points)
}

fn to_csv<'a>(reports: impl Iterator<Item = &'a Report>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header_written = false;
    for r in reports {
        let has_ci = r.ci_low.is_some();
        if !header_written {
            let mut h = vec!["scene", "condition", "jnd"];
            if has_ci {
                h.extend(["ci_low", "ci_high"]);
            }
            w.write_record(&h).expect("in-memory csv");
            header_written = true;
        }
        for i in 0..r.conditions.len() {
            let mut row = vec![
                r.scene.clone().unwrap_or_default(),
                r.conditions[i].clone(),
                format!("{}", r.jnd[i]),
            ];
            if let (Some(l), Some(h)) = (&r.ci_low, &r.ci_high) {
                row.extend([format!("{}", l[i]), format!("{}", h[i])]);
            }
            w.write_record(&row).expect("in-memory csv");
        }
    }
    String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8")
}

fn open(path: &Path) -> Result<std::fs::File, Failure> {
    std::fs::File::open(path)
        .map_err(|e| Failure::Input(format!("{}: cannot open: {e}", path.display())))
}

/// Writes via a temporary file in the same folder and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| Failure::Input(format!("{}: cannot write: {e}", path.display()));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

fn progress(cli: &Cli, len: u64, what: &str) -> ProgressBar {
    if cli.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} replicates ({per_sec}, eta {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
