//! `trainer report` on a finished run, on a run still training (no test
//! record, a torn last line, no checkpoint), on the committed 50-epoch run,
//! and on a seed-network run; `trainer summary`.

mod common;

use std::path::Path;

use common::{assert_success, run, text, trained_checkpoint};

fn copy_run(from: &Path, to: &Path, with_checkpoint: bool) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["metrics.jsonl", "config.json"] {
        if from.join(name).exists() {
            std::fs::copy(from.join(name), to.join(name)).unwrap();
        }
    }
    if with_checkpoint {
        std::fs::copy(from.join("best.safetensors"), to.join("best.safetensors")).unwrap();
    }
}

/// The per-class rows of index.html: (correct, images).
fn per_class(html: &str) -> Vec<(u64, u64)> {
    html.split("<tr><td>")
        .skip(1)
        .filter_map(|row| {
            let cells: Vec<u64> =
                row.split("<td class=\"n\">").skip(1).filter_map(|cell| cell.split('<').next()?.parse().ok()).collect();
            (cells.len() >= 2).then(|| (cells[0], cells[1]))
        })
        .collect()
}

#[test]
fn a_finished_run_gets_every_figure_and_counts_that_match_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = trained_checkpoint();
    let run_dir = dir.path().join("finished");
    copy_run(fixture.parent().unwrap(), &run_dir, true);
    let output = run(&["report", "--save-dir", &run_dir.display().to_string(), "--device", "cpu"]);
    assert_success(&output);
    let out = run_dir.join("report");
    for name in ["curves.svg", "curves.png", "confusion.png", "misclassified.png", "index.html"] {
        assert!(out.join(name).exists(), "{name} missing:\n{}", text(&output));
    }
    for name in ["curves.png", "confusion.png", "misclassified.png"] {
        image::open(out.join(name)).unwrap_or_else(|error| panic!("{name}: {error}"));
    }
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(svg.contains("best epoch") && svg.contains("test accuracy"), "curves without the best epoch or the test");

    let evaluate = run(&[
        "evaluate",
        "--checkpoint",
        &run_dir.join("best.safetensors").display().to_string(),
        "--device",
        "cpu",
        "--json",
    ]);
    assert_success(&evaluate);
    let evaluation: serde_json::Value = serde_json::from_slice(&evaluate.stdout).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let classes = per_class(&html);
    assert_eq!(classes.len(), 10, "{html}");
    assert_eq!(classes.iter().map(|(_, images)| images).sum::<u64>(), 10_000);
    assert_eq!(classes.iter().map(|(correct, _)| correct).sum::<u64>(), evaluation["n_correct"].as_u64().unwrap());
    assert!(html.contains("data:image/png;base64,") && html.contains("<svg"), "figures are inlined");
}

#[test]
fn a_run_still_training_or_without_checkpoints_gets_its_curves() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = trained_checkpoint();
    let run_dir = dir.path().join("training");
    copy_run(fixture.parent().unwrap(), &run_dir, false);
    // No test record yet, and a line torn by a kill.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let partial: String =
        metrics.lines().filter(|line| !line.contains("\"test\"")).map(|line| format!("{line}\n")).collect();
    std::fs::write(run_dir.join("metrics.jsonl"), format!("{partial}{{\"epoch\":3,\"loss\":0.1")).unwrap();
    let out = dir.path().join("figures");
    let output = run(&["report", "--save-dir", &run_dir.display().to_string(), "--out", &out.display().to_string()]);
    assert_success(&output);
    assert!(text(&output).contains("skipped 1 line"), "{}", text(&output));
    assert!(out.join("curves.png").exists() && out.join("index.html").exists());
    assert!(!out.join("confusion.png").exists());
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(!svg.contains("test accuracy"));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("best.safetensors does not exist") && html.contains("training (or stopped)"), "{html}");

    // The committed 50-epoch run has no checkpoints either.
    let committed = dir.path().join("committed");
    copy_run(&common::data_dir().join("../docs/results/mnist-50-epochs-cpu"), &committed, false);
    let output = run(&["report", "--save-dir", &committed.display().to_string()]);
    assert_success(&output);
    let svg = std::fs::read_to_string(committed.join("report/curves.svg")).unwrap();
    assert!(svg.contains("best epoch 46") && svg.contains("test accuracy 0.9957"), "the committed run's best and test");

    // Nothing recorded yet, or no run at all: an error naming the file.
    std::fs::write(run_dir.join("metrics.jsonl"), "").unwrap();
    let output = run(&["report", "--save-dir", &run_dir.display().to_string()]);
    assert!(!output.status.success() && text(&output).contains("no epoch has been recorded yet"), "{}", text(&output));
    let output = run(&["report", "--save-dir", &dir.path().join("nothing").display().to_string()]);
    assert!(!output.status.success() && text(&output).contains("has no metrics.jsonl"), "{}", text(&output));
}

#[test]
fn a_seed_network_run_is_reported_too() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("seed");
    let output =
        common::train(&run_dir, &["--network", "seed", "--epochs", "1", "--train-images", "500", "--augment", "none"]);
    assert_success(&output);
    let output = run(&["report", "--save-dir", &run_dir.display().to_string(), "--device", "cpu"]);
    assert_success(&output);
    assert!(run_dir.join("report/misclassified.png").exists());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["architecture"], "seed");
    assert_eq!(config["model"]["parameters"], 12_858_826);
}

#[test]
fn summary_lists_layers_and_totals_for_both_networks() {
    let output = run(&["summary"]);
    assert_success(&output);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("conv2") && table.contains("[64, 14, 14]") && table.contains("3,274,634"), "{table}");
    let output = run(&["summary", "--network", "seed", "--json"]);
    assert_success(&output);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["parameters"], 12_858_826);
    let layers = summary["layers"].as_array().unwrap();
    let conv2 = layers.iter().find(|layer| layer["name"] == "conv2").unwrap();
    assert_eq!(conv2["output_shape"], serde_json::json!([64, 28, 28]));
    let forward: u64 = layers.iter().map(|layer| layer["forward_flops"].as_u64().unwrap()).sum();
    assert_eq!(summary["forward_flops_per_image"], forward);
    assert!(summary.get("measured").is_none(), "nothing is timed unless --measure asks");
}

#[test]
fn summary_measures_the_vgg_networks_cost_per_image() {
    let output = run(&["summary", "--network", "vgg", "--measure", "--threads", "1", "--batch-size", "8", "--json"]);
    assert_success(&output);
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((summary["architecture"].as_str(), summary["parameters"].as_u64()), (Some("vgg"), Some(192_330)));
    let conv4 = summary["layers"].as_array().unwrap().iter().find(|layer| layer["name"] == "conv4").unwrap();
    assert_eq!(conv4["output_shape"], serde_json::json!([128, 7, 7]));
    let measured = &summary["measured"];
    assert_eq!(measured["threads"], 1);
    let (rate, micros) = (
        measured["train_images_per_second"].as_f64().unwrap(),
        measured["train_microseconds_per_image"].as_f64().unwrap(),
    );
    assert!(rate > 0.0 && (rate * micros - 1e6).abs() < 1.0, "{measured}");
    let output = run(&["summary", "--network", "vgg", "--measure", "--threads", "1", "--batch-size", "8"]);
    assert_success(&output);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("conv 3x3, 64->128, same")
            && table.contains("measured on this machine with 1 threads: training"),
        "{table}"
    );
}

#[test]
fn summary_shows_the_strided_networks_strides_and_paddings_in_aligned_columns() {
    let output = run(&["summary", "--network", "strided"]);
    assert_success(&output);
    let table = String::from_utf8_lossy(&output.stdout);
    let line = |name: &str| table.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("{table}"));
    assert!(line("conv3 ").contains("conv 5x5 stride 2, 32->32, same") && line("conv3 ").contains("[32, 12, 12]"));
    assert!(line("conv5 ").contains("conv 3x3, 64->64, valid") && line("conv5 ").contains("[64, 8, 8]"));
    assert!(line("fc7 ").contains("dense 1024->128"), "{table}");
    // The output-shape column starts at the same place on every row, the longest kind included.
    let column = |name: &str| line(name).find('[').unwrap();
    assert_eq!(column("conv3 "), column("conv1 "), "{table}");
    assert_eq!(column("conv3 "), line("layer").find("output shape").unwrap(), "{table}");
    assert!(table.contains("325,578 trainable parameters"), "{table}");
}
