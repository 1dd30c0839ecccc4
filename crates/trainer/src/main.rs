//! `trainer`: the command-line program. The work is in the library crates
//! (`augment`, `datasets`, `idx`, `model`, `preprocess`, `report`, `runfiles`, `scoring`, `serve`);
//! this binary wires them into training, evaluation, prediction, reports,
//! export and the web app.

mod cli;
mod console;
mod data;
mod data_info;
mod evaluate;
mod export;
mod fault;
mod inference;
mod pipeline;
mod predict;
mod presets;
mod report;
mod run_dir;
mod runs;
mod serve;
mod signals;
mod streams;
mod summary;
mod sweep;
mod train;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = presets::parse_from(std::env::args_os()).unwrap_or_else(|error| error.exit());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(console::LogWriter)
        // Colour only for a terminal: piped logs stay plain text.
        .with_ansi(console::log_color())
        .init();
    let result = match args.command {
        None => train::run(&args.train, &signals::install()),
        Some(cli::Command::Train(train_args)) => train::run(&train_args, &signals::install()),
        Some(cli::Command::Evaluate(evaluate_args)) => evaluate::run(&evaluate_args),
        Some(cli::Command::DataInfo(data_args)) => data_info::run(&data_args),
        Some(cli::Command::Predict(predict_args)) => predict::run(&predict_args),
        Some(cli::Command::Report(report_args)) => report::run(&report_args),
        Some(cli::Command::Summary(summary_args)) => summary::run(&summary_args),
        Some(cli::Command::Export(export_args)) => export::run(&export_args),
        Some(cli::Command::Serve(serve_args)) => serve::run(&serve_args),
        Some(cli::Command::Sweep(cli::SweepCommand::Plan(plan_args))) => sweep::plan(&plan_args),
        Some(cli::Command::Sweep(cli::SweepCommand::Task(task_args))) => sweep::task(&task_args, &signals::install()),
        Some(cli::Command::Runs(runs_args)) => runs::run(&runs_args),
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
