//! Project tasks, run as `cargo xtask <task>`. This file only dispatches; each task is a module.

mod fetch_data;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project tasks: install libtorch, fetch and verify the data.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install libtorch (torch==2.11.0 from PyPI) into a project-local venv and point the build at it.
    Setup(setup::Args),
    /// Verify the data files' SHA-256 sums; (re)download missing or corrupt ones.
    FetchData(fetch_data::Args),
}

/// The repository root: xtask lives one folder below it.
fn project_root() -> PathBuf {
    let xtask_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().map(PathBuf::from).unwrap_or(xtask_dir)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup(args) => setup::run(&project_root(), &args),
        Task::FetchData(args) => fetch_data::run(&project_root(), &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
