//! `trainer runs DIR`: one view over many runs (a sweep): a table of every
//! run, then per recipe the spread of the test accuracy (`runfiles::sweep`,
//! the numbers the web app shows too), as text or JSON, and optionally the
//! runs' validation curves overlaid in one picture.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use runfiles::{Group, NOT_RUNS, Recipe, Records, RunFiles, RunSummary, State, Status, group_by_recipe};
use serde_json::{Value, json};

use crate::cli::RunsArgs;
use crate::run_dir::{self, CONFIG_FILE, METRICS_FILE, STATUS_FILE};

/// How deep runs are looked for below the sweep folder.
const MAX_DEPTH: usize = 4;

/// A run found in the sweep: its summary and its records (for the curves).
struct FoundRun {
    summary: RunSummary,
    records: Records,
}

/// The folders below `dir` that are runs (hold `config.json`), relative to
/// `dir`; any other folder that holds no run is an error naming it.
pub(crate) fn run_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join(CONFIG_FILE).is_file() {
        return Ok(vec![PathBuf::new()]);
    }
    let mut found = Vec::new();
    collect(dir, Path::new(""), 0, &mut found)?;
    if found.is_empty() {
        bail!("{}: no run in it (a run is a folder with {CONFIG_FILE})", dir.display());
    }
    found.sort();
    Ok(found)
}

fn collect(root: &Path, relative: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<()> {
    let folder = root.join(relative);
    let entries = fs::read_dir(&folder).with_context(|| format!("cannot list {}", folder.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", folder.display()))?;
        let name = entry.file_name();
        let is_folder = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if !is_folder || name.to_string_lossy().starts_with('.') || NOT_RUNS.iter().any(|skip| name == *skip) {
            continue;
        }
        let path = relative.join(&name);
        if root.join(&path).join(CONFIG_FILE).is_file() {
            found.push(path);
        } else if root.join(&path).join(run_dir::LOCK_FILE).is_file() {
            // A run being opened: its config.json is written once its checks pass.
            continue;
        } else {
            let before = found.len();
            if depth + 1 < MAX_DEPTH {
                collect(root, &path, depth + 1, found)?;
            }
            if found.len() == before {
                bail!(
                    "{}: not a run (no {CONFIG_FILE}) and holds no run; a sweep folder holds runs, \
                     folders of runs, and `logs/`",
                    root.join(&path).display()
                );
            }
        }
    }
    Ok(())
}

/// `status.json`, when there is one that reads.
fn read_status(dir: &Path) -> Option<Status> {
    serde_json::from_slice(&fs::read(dir.join(STATUS_FILE)).ok()?).ok()
}

fn read_run(sweep: &Path, relative: &Path, defaults: &Recipe) -> Result<FoundRun> {
    let dir = sweep.join(relative);
    let config_path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let config: Value = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{}: not JSON ({error})", config_path.display()))?;
    let records = match fs::read_to_string(dir.join(METRICS_FILE)) {
        Ok(text) => Records::parse(&text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Records::parse(""),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", dir.join(METRICS_FILE).display())),
    };
    let status = read_status(&dir);
    let name = if relative.as_os_str().is_empty() { ".".to_owned() } else { relative.display().to_string() };
    let files = RunFiles {
        config: &config,
        records: &records,
        status: status.as_ref(),
        alive: status.as_ref().is_some_and(Status::process_alive),
    };
    let summary =
        RunSummary::new(&name, files, defaults).map_err(|reason| anyhow::anyhow!("{}: {reason}", dir.display()))?;
    Ok(FoundRun { summary, records })
}

/// `h:mm:ss`.
fn duration(seconds: f64) -> String {
    let seconds = seconds.round() as u64;
    format!("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

fn accuracy(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.4}"))
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Running => "running",
        State::Finished => "finished",
        State::Stopped => "stopped",
        State::Failed => "failed",
    }
}

/// The columns of the runs table.
const RUN_COLUMNS: [&str; 8] = ["run", "seed", "epochs", "state", "best", "validation", "test", "time"];

/// A run's cells in the runs table, in `RUN_COLUMNS`' order.
fn run_row(run: &RunSummary) -> [String; 8] {
    let epochs = format!("{}/{}", run.epochs_done, run.epochs_total.map_or_else(|| "?".to_owned(), |n| n.to_string()));
    [
        run.name.clone(),
        run.seed.to_string(),
        epochs,
        state_name(run.state).to_owned(),
        run.best_epoch.map_or_else(|| "-".to_owned(), |epoch| epoch.to_string()),
        accuracy(run.best_validation_accuracy),
        accuracy(run.test_accuracy),
        duration(run.seconds),
    ]
}

fn print_runs(runs: &[RunSummary]) {
    let width = runs.iter().map(|run| run.name.len()).max().unwrap_or(3).max(3);
    let line = |cells: &[String]| {
        println!(
            "{:width$}  {:>5}  {:>7}  {:8}  {:>4}  {:>10}  {:>6}  {:>8}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
        );
    };
    line(&RUN_COLUMNS.map(str::to_owned));
    for run in runs {
        line(&run_row(run));
        if let Some(message) = &run.message {
            println!("{:width$}  failed: {message}", "");
        }
    }
}

/// A group's label as `key=value` pairs (`all runs` for the only group).
fn label(group: &Group) -> String {
    if group.label.is_empty() {
        return "all runs".to_owned();
    }
    group
        .label
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A group's test accuracy in words.
fn spread_text(group: &Group) -> String {
    match group.test_accuracy {
        Some(s) => format!("mean {:.4} ± {:.4} (std), min {:.4}, max {:.4}", s.mean, s.std, s.min, s.max),
        None => "no finished run yet".to_owned(),
    }
}

fn print_groups(groups: &[Group]) {
    println!();
    println!("test accuracy per recipe (finished runs):");
    for group in groups {
        println!("  {}: {}/{} finished, {}", label(group), group.n_finished, group.runs.len(), spread_text(group));
    }
}

/// The sweep folder's own name (`.` resolved).
fn sweep_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical.file_name().map_or_else(|| dir.display().to_string(), |name| name.to_string_lossy().into())
}

fn overlay(dir: &Path, runs: &[FoundRun], groups: &[Group]) -> report::Overlay {
    let name = sweep_name(dir);
    let series = runs
        .iter()
        .map(|run| report::OverlaySeries {
            group: groups.iter().position(|group| group.runs.contains(&run.summary.name)).unwrap_or(0),
            points: run.records.epochs.iter().map(|epoch| (epoch.epoch, epoch.validation_accuracy)).collect(),
        })
        .collect();
    let title = format!("{name}: validation accuracy of {} runs", runs.len());
    report::Overlay { title, groups: groups.iter().map(label).collect(), series }
}

fn write_curves(path: &Path, overlay: &report::Overlay) -> Result<()> {
    let bytes = match path.extension().and_then(|extension| extension.to_str()) {
        Some("svg") => report::overlay_svg(overlay)?.into_bytes(),
        Some("png") => report::overlay_png(overlay)?,
        _ => bail!("--curves {}: expected a .svg or .png file name", path.display()),
    };
    run_dir::write_atomically(path, &bytes)
}

/// Every run below `dir`, read, and their groups by recipe.
fn gather(dir: &Path) -> Result<(Vec<FoundRun>, Vec<RunSummary>, Vec<Group>)> {
    let defaults = crate::train::default_recipe();
    let runs: Vec<FoundRun> =
        run_folders(dir)?.iter().map(|relative| read_run(dir, relative, &defaults)).collect::<Result<_>>()?;
    let summaries: Vec<RunSummary> = runs.iter().map(|run| run.summary.clone()).collect();
    let groups = group_by_recipe(&summaries);
    Ok((runs, summaries, groups))
}

/// Lists the runs below `args.dir` and their spread per recipe.
pub fn run(args: &RunsArgs) -> Result<()> {
    let (runs, summaries, groups) = gather(&args.dir)?;
    if let Some(path) = &args.curves {
        write_curves(path, &overlay(&args.dir, &runs, &groups))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "runs": summaries, "groups": groups }))?);
        return Ok(());
    }
    print_runs(&summaries);
    print_groups(&groups);
    Ok(())
}

/// Whether `dir` is a sweep rather than a run: it has neither a run's
/// settings nor its records, and holds runs.
pub fn is_sweep(dir: &Path) -> bool {
    !dir.join(CONFIG_FILE).exists() && !dir.join(METRICS_FILE).exists() && run_folders(dir).is_ok()
}

/// The sweep's page for `trainer report`: the spread per recipe, every
/// run, and the overlaid curves; the files it wrote into `out`.
pub fn report(dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let (runs, summaries, groups) = gather(dir)?;
    let overlay = overlay(dir, &runs, &groups);
    let svg = report::overlay_svg(&overlay)?;
    fs::create_dir_all(out).with_context(|| format!("cannot create --out {}", out.display()))?;
    let mut written = Vec::new();
    for (name, bytes) in [("curves.svg", svg.clone().into_bytes()), ("curves.png", report::overlay_png(&overlay)?)] {
        run_dir::write_atomically(&out.join(name), &bytes)?;
        written.push(out.join(name));
    }
    let group_rows = groups
        .iter()
        .map(|group| {
            let test = group.test_accuracy;
            vec![
                label(group),
                format!("{}/{}", group.n_finished, group.runs.len()),
                accuracy(test.map(|s| s.mean)),
                accuracy(test.map(|s| s.std)),
                accuracy(test.map(|s| s.min)),
                accuracy(test.map(|s| s.max)),
            ]
        })
        .collect();
    let page = report::Page {
        title: format!("Sweep {}", sweep_name(dir)),
        facts: vec![
            ("runs".into(), summaries.len().to_string()),
            ("finished".into(), summaries.iter().filter(|run| run.state == State::Finished).count().to_string()),
        ],
        tables: vec![
            report::Table {
                title: "Test accuracy per recipe (finished runs)".into(),
                header: ["recipe", "finished", "mean", "std", "min", "max"].map(str::to_owned).to_vec(),
                rows: group_rows,
            },
            report::Table {
                title: "Runs".into(),
                header: RUN_COLUMNS.map(str::to_owned).to_vec(),
                rows: summaries.iter().map(|run| run_row(run).to_vec()).collect(),
            },
        ],
        figures: vec![report::Figure::Svg { title: overlay.title.clone(), svg }],
        ..report::Page::default()
    };
    run_dir::write_atomically(&out.join("index.html"), report::index_html(&page).as_bytes())?;
    written.push(out.join("index.html"));
    Ok(written)
}
