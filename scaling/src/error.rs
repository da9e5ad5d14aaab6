//! Errors of the scaling library. Each names what was wrong and where, so a CLI can print it as is.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScaleError {
    /// Malformed input: `source` names the file (or "input"), `location` the line/field.
    #[error("{source_name}: {location}: {message}")]
    Input {
        source_name: String,
        location: String,
        message: String,
    },

    /// The comparisons do not determine finite scores: one group of conditions won every comparison
    /// against the rest, so the maximum-likelihood distance between the groups is infinite.
    #[error(
        "no finite optimum: {winners} won all {comparisons} comparisons against {losers}, so the \
         maximum-likelihood distance between these groups is infinite; collect comparisons that the \
         other group wins too (or use prior=gaussian, which bounds some, not all, such designs)"
    )]
    Unbounded {
        winners: String,
        losers: String,
        comparisons: u64,
    },

    /// The comparison graph has several components and the caller asked not to join them.
    #[error(
        "the comparison graph is disconnected ({components}); scores of different components are not comparable"
    )]
    Disconnected { components: String },

    /// The optimiser failed to converge (should not happen on a bounded problem; reported, not hidden).
    #[error("the optimiser did not converge: {0}")]
    Optimizer(String),

    #[error("{0}")]
    Invalid(String),
}

impl ScaleError {
    pub(crate) fn input(
        source_name: &str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ScaleError::Input {
            source_name: source_name.to_string(),
            location: location.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ScaleError>;
