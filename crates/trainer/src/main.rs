//! `trainer`: the command-line program. Glue only: the work is in the library crates.

mod cli;
mod data_info;

use anyhow::Result;
use clap::Parser;

fn main() -> Result<()> {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match args.command {
        cli::Command::DataInfo(data_args) => data_info::run(&data_args),
    }
}
