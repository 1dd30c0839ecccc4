//! `trainer`: the command-line program. Glue only: the work is in the library crates.

mod cli;
mod data_info;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match args.command {
        cli::Command::DataInfo(data_args) => data_info::run(&data_args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole cause chain on one line, without a backtrace: these are user errors.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
