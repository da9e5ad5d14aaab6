//! The two programs the pipeline drives: `jndlab-train` (libtorch) and `jndlab-app` (the study platform).
//! They run as child processes so that their own progress bars and logs reach the terminal, and so that
//! this binary links neither libtorch nor the web stack.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub struct Tools {
    pub train: PathBuf,
    pub app: PathBuf,
}

impl Tools {
    /// The programs in `bin_dir`, else beside this executable (the same cargo target folder).
    pub fn find(bin_dir: Option<&Path>) -> Result<Tools> {
        let dir = match bin_dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()
                .context("cannot locate this executable")?
                .parent()
                .context("executable without a folder")?
                .to_path_buf(),
        };
        let tools = Tools {
            train: dir.join("jndlab-train"),
            app: dir.join("jndlab-app"),
        };
        for p in [&tools.train, &tools.app] {
            if !p.is_file() {
                bail!(
                    "{} not found: build it first (`cargo build -p trainer -p app --bins`, or run scripts/pipeline.sh), or pass --bin-dir",
                    p.display()
                );
            }
        }
        Ok(tools)
    }
}

/// Runs `cmd` with the terminal as its stdout/stderr; an error names the command and its exit status.
pub fn run(what: &str, cmd: &mut Command) -> Result<()> {
    tracing::debug!(?cmd, "{what}");
    let status = cmd
        .status()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status}): {}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
