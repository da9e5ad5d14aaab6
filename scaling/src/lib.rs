//! Thurstonian maximum-likelihood scaling of pairwise comparisons into JND units.
//!
//! A re-implementation of `pw_scale` from the MATLAB toolbox pwcmp (Perez-Ortiz & Mantiuk, 2017):
//! the same objective (Thurstone case V with sigma = 1.4826, so that 1 JND = 75% preference, and
//! pwcmp's "gaussian" prior), minimised in the log domain with L-BFGS and an analytic gradient, so that
//! large counts and unanimous designs are handled (the latter reported as having no finite optimum
//! instead of returning optimiser-dependent numbers). On top: observer bootstrap CIs, a significance
//! matrix, pwcmp's leave-one-out observer outlier screens ([`outliers`]) and power planning
//! ([`power`]: comparisons needed for a target CI width). [`analyse`] runs the whole analysis of a
//! study's answers into one [`Analysis`] (the `jnd.json` format; see [`analysis`]).
//!
//! ```
//! use scaling::{CountMatrix, ScaleOptions, scale};
//! // condition 2 chosen over 1 in 75 of 100 comparisons: 1 JND apart
//! let d = CountMatrix::from_rows(&[vec![0., 25.], vec![75., 0.]], None).unwrap();
//! let s = scale(&d, &ScaleOptions { prior: scaling::Prior::None, ..Default::default() }).unwrap();
//! assert!((s.jnd[1] - s.jnd[0] - 1.0).abs() < 1e-3);
//! ```

// Matrix code indexes conditions i, j into several arrays at once; index loops read best there.
#![allow(clippy::needless_range_loop)]

pub mod analysis;
mod bootstrap;
mod comparisons;
mod counts;
mod error;
mod fit;
pub mod graph;
pub mod normal;
mod objective;
pub mod outliers;
mod plot;
pub mod power;
mod quantile;
mod significance;
pub mod simulate;

pub use analysis::{Analysis, AnalysisOptions, JndSet, SceneResult, analyse};
pub use bootstrap::{Bootstrap, BootstrapOptions, bootstrap};
pub use comparisons::{Answer, Comparisons, LONG_FORMAT_COLUMNS, ObserverCounts};
pub use counts::CountMatrix;
pub use error::{Result, ScaleError};
pub use fit::{
    Disconnected, Prior, Regularization, SPARSE_FROM, ScaleOptions, Scaling, Solver, scale,
};
pub use objective::{Objective, SIGMA};
pub use outliers::{OUTLIER_FENCE, OutlierRow, OutlierScreen, outliers, outliers_by_scene};
pub use plot::{
    BoxStats, PlotPoint, ScatterPoint, Series, box_plot_svg, jnd_chart_svg, line_chart_svg,
    scatter_svg,
};
pub use quantile::{quantile, quantile_sorted};
pub use significance::{SignificanceTable, significance};
