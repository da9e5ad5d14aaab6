//! `jnd-scale`: scale pairwise comparisons into JND units (pwcmp-compatible).

use clap::{ArgGroup, Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use scaling::{
    AnalysisOptions, Comparisons, CountMatrix, Disconnected, JndSet, PlotPoint, Prior,
    Regularization, ScaleError, ScaleOptions, Solver, analyse, jnd_chart_svg, scale,
};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

    /// Newton's linear solver: `dense` (Cholesky, any prior), `sparse` (conjugate gradients on the
    /// compared pairs, prior none only: for thousands of conditions) or `auto` (sparse for prior none
    /// from 300 conditions).
    #[arg(long, value_enum, default_value_t = Solver::Auto)]
    solver: Solver,

    /// Disconnected comparison graphs: `join` them as pwcmp does (a fake 1:1 comparison between the best
    /// condition of every two components, with a warning) or `error`.
    #[arg(long, value_enum, default_value_t = Disconnected::Join)]
    disconnected: Disconnected,

    /// Also scale every scene separately (needs a `scene` column); with --outliers, screen observers
    /// per scene as pwcmp's `pw_outlier_analysis_table` does. CSV output then lists the scenes.
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

    /// Observer outlier screen (leave-one-observer-out log10 likelihood per compared pair, pwcmp's
    /// dist_L; flagged at >= --outlier-fence).
    #[arg(long, requires = "comparisons")]
    outliers: bool,

    /// dist_L at or above which --outliers flags an observer.
    #[arg(long, default_value_t = scaling::OUTLIER_FENCE, requires = "outliers")]
    outlier_fence: f64,

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

/// The JSON of `--matrix`: one fit, no observers (with --comparisons the output is `scaling::Analysis`).
#[derive(Serialize)]
struct MatrixReport {
    conditions: Vec<String>,
    jnd: Vec<f64>,
    /// pwcmp's objective (negative log-posterior) at the optimum.
    objective: f64,
    iterations: u64,
    evaluations: u64,
    comparisons: u64,
    warnings: Vec<String>,
    options: ScaleOptions,
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

/// What is written: the text on stdout (or --output), the SVGs for --plot, the warnings for stderr.
struct Rendered {
    text: String,
    charts: Vec<String>,
    warnings: Vec<String>,
}

fn run(cli: &Cli) -> Result<(), Failure> {
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
        solver: cli.solver,
    };
    let out = match (&cli.matrix, &cli.comparisons) {
        (Some(path), _) => run_matrix(cli, path, &options)?,
        (None, Some(path)) => run_comparisons(cli, path, &options)?,
        (None, None) => unreachable!("clap requires one input"),
    };
    // Everything is computed: only now are files written.
    if let Some(plot) = &cli.plot {
        write_atomically(plot, out.charts.join("\n").as_bytes())?;
    }
    for w in &out.warnings {
        eprintln!("jnd-scale: warning: {w}");
    }
    match &cli.output {
        Some(path) => write_atomically(path, out.text.as_bytes()),
        None => std::io::stdout()
            .write_all(out.text.as_bytes())
            .map_err(|e| Failure::Input(format!("stdout: {e}"))),
    }
}

fn run_matrix(cli: &Cli, path: &Path, options: &ScaleOptions) -> Result<Rendered, Failure> {
    let mut d = CountMatrix::read_csv(open(path)?, &path.display().to_string())?;
    if let Some(names) = &cli.names {
        d = d
            .with_names(names.clone())
            .map_err(|e| Failure::Input(format!("--names: {e}")))?;
    }
    let fit = scale(&d, options)?;
    let set = JndSet {
        conditions: d.names().to_vec(),
        jnd: fit.jnd.clone(),
        ci_low: None,
        ci_high: None,
        std: None,
        replicates_used: 0,
        observers: 0,
        answers: d.total() as usize,
    };
    let text = match cli.format {
        Format::Json => {
            let report = MatrixReport {
                conditions: d.names().to_vec(),
                jnd: fit.jnd,
                objective: fit.objective,
                iterations: fit.iterations,
                evaluations: fit.evaluations,
                comparisons: d.total() as u64,
                warnings: fit.warnings.clone(),
                options: *options,
            };
            serde_json::to_string_pretty(&report).expect("serialisable") + "\n"
        }
        Format::Csv => to_csv([(None, &set)].into_iter()),
    };
    Ok(Rendered {
        text,
        charts: charts(cli, [(None, &set)].into_iter())?,
        warnings: fit.warnings,
    })
}

fn run_comparisons(cli: &Cli, path: &Path, options: &ScaleOptions) -> Result<Rendered, Failure> {
    let data = Comparisons::read_csv(
        open(path)?,
        &path.display().to_string(),
        cli.allow_extra_columns,
    )?;
    if cli.per_scene && data.scenes.is_empty() {
        return Err(Failure::Input(format!(
            "{}: --per-scene needs a 'scene' column",
            path.display()
        )));
    }
    if cli.outliers && data.observers.len() < 3 {
        return Err(Failure::Input(format!(
            "--outliers needs at least 3 observers, got {}",
            data.observers.len()
        )));
    }
    let opts = AnalysisOptions {
        scale: *options,
        replicates: cli.bootstrap,
        alpha: cli.alpha,
        seed: cli.seed,
        per_scene: cli.per_scene,
        outliers: cli.outliers,
        outlier_fence: cli.outlier_fence,
    };
    let sets = if cli.per_scene {
        1 + data.scenes.len()
    } else {
        1
    };
    let bar = progress(cli, (cli.bootstrap * sets) as u64);
    let analysis = analyse(&data, &opts, &|| bar.inc(1));
    bar.finish_and_clear();
    let Some(pooled) = &analysis.pooled else {
        return Err(Failure::Unscalable(analysis.warnings.join("; ")));
    };
    // --per-scene shows the scenes (JSON: both); otherwise the pooled scores.
    let shown: Vec<(Option<&str>, &JndSet)> = if cli.per_scene {
        analysis
            .per_scene
            .iter()
            .filter_map(|s| s.result.as_ref().map(|r| (Some(s.scene.as_str()), r)))
            .collect()
    } else {
        vec![(None, pooled)]
    };
    let text = match cli.format {
        Format::Json => serde_json::to_string_pretty(&analysis).expect("serialisable") + "\n",
        Format::Csv => to_csv(shown.iter().copied()),
    };
    let mut warnings = analysis.warnings.clone();
    for s in &analysis.per_scene {
        warnings.extend(s.warnings.iter().map(|w| format!("scene {}: {w}", s.scene)));
    }
    Ok(Rendered {
        text,
        charts: charts(cli, shown.iter().copied())?,
        warnings,
    })
}

fn charts<'a>(
    cli: &Cli,
    sets: impl Iterator<Item = (Option<&'a str>, &'a JndSet)>,
) -> Result<Vec<String>, Failure> {
    if cli.plot.is_none() {
        return Ok(Vec::new());
    }
    sets.map(|(scene, r)| {
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
        let title = match scene {
            Some(s) => format!("JND per condition, scene {s}"),
            None => "JND per condition".to_string(),
        };
        jnd_chart_svg(&title, &points).map_err(|e| Failure::Unscalable(format!("plot: {e}")))
    })
    .collect()
}

fn to_csv<'a>(sets: impl Iterator<Item = (Option<&'a str>, &'a JndSet)>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header_written = false;
    for (scene, r) in sets {
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
                scene.unwrap_or_default().to_string(),
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

/// Writes atomically (`atomic-write-file`: a temporary file in the same folder, renamed into place), so
/// a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::Input(format!("{}: cannot write: {e}", path.display()));
    let mut f = atomic_write_file::AtomicWriteFile::open(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.commit().map_err(fail)
}

fn progress(cli: &Cli, len: u64) -> ProgressBar {
    if cli.quiet || len == 0 {
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
    bar.set_message("bootstrap");
    bar
}
