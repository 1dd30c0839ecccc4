//! `trainer serve`: the web app of the `serve` crate, with libtorch
//! networks (`model`) and the data set's test images behind it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use model::{Ensemble, TestTimeAugmented, Views, checkpoint, probabilities};
use serve::{AppState, Backend, BatcherConfig, DrawingModel, Model, ServeConfig, TestSet};
use tch::{Device, Tensor};

use crate::cli::{DataArgs, MAX_BATCH, MAX_QUEUE, MAX_THREADS, ServeArgs, check_range};

struct TchModel {
    /// One network, or several answering together, through the test-time views.
    classifier: TestTimeAugmented<Ensemble>,
    class_names: Vec<String>,
    dataset: String,
}

impl Model for TchModel {
    fn probabilities(&mut self, pixels: &[f32]) -> Result<Vec<Vec<f32>>, String> {
        let n = (pixels.len() / serve::PIXELS) as i64;
        let images = Tensor::from_slice(pixels).view([n, serve::SIDE as i64, serve::SIDE as i64]);
        probabilities(&self.classifier, &images, 512).map_err(|error| error.to_string())
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn dataset(&self) -> &str {
        &self.dataset
    }
}

struct TchBackend {
    device: Device,
    /// Test-time views every loaded model answers through (`--tta`).
    views: Views,
    data: DataArgs,
    test_sets: Mutex<HashMap<String, TestSet>>,
}

impl Backend for TchBackend {
    fn load(&self, paths: &[PathBuf]) -> Result<Box<dyn Model>, String> {
        let loaded = crate::inference::load_ensemble(paths, self.device, false, &self.views)
            .map_err(|error| format!("{error:#}"))?;
        Ok(Box::new(TchModel {
            classifier: loaded.classifier,
            class_names: loaded.dataset.class_names,
            dataset: loaded.dataset.name,
        }))
    }

    fn dataset(&self, path: &Path) -> Result<String, String> {
        checkpoint::read_meta(path).map(|(_, meta)| meta.dataset.name).map_err(|error| error.to_string())
    }

    fn test_set(&self, dataset: &str) -> Result<TestSet, String> {
        let mut cache = self.test_sets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = cache.get(dataset) {
            return Ok(found.clone());
        }
        let chosen = datasets::by_name(dataset).map_err(|error| error.to_string())?;
        let data = DataArgs { dataset: chosen, ..self.data.clone() };
        let test = crate::data::load(&data).map_err(|error| format!("{error:#}"))?.test;
        let set = TestSet { pixels: test.images.iter().copied().collect(), labels: test.labels.to_vec() };
        cache.insert(dataset.to_owned(), set.clone());
        Ok(set)
    }
}

/// The server's limits from the flags (the rest at their defaults).
fn limits(args: &ServeArgs) -> Result<serve::Limits> {
    check_range("--header-timeout-secs", args.header_timeout_secs, 1, 3600)?;
    check_range("--body-timeout-secs", args.body_timeout_secs, 1, 3600)?;
    check_range("--max-connections", args.max_connections, 1, 65_536)?;
    Ok(serve::Limits {
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        max_connections: args.max_connections,
        ..serve::Limits::default()
    })
}

/// The drawing model the command line names, checked by loading it once:
/// none, one checkpoint, or an ensemble (repeated `--checkpoint`, or a folder
/// of runs). The files named there are trusted as given, links included:
/// resolved once here.
fn drawing_model(given: &[PathBuf], device: Device, views: &Views) -> Result<Option<DrawingModel>> {
    if given.is_empty() {
        return Ok(None);
    }
    let paths = crate::inference::checkpoint_paths(given, PathBuf::new)?;
    let models = crate::inference::load_ensemble(&paths, device, false, views)?;
    let checkpoints = paths
        .iter()
        .map(|path| std::fs::canonicalize(path).with_context(|| format!("{}: cannot resolve", path.display())))
        .collect::<Result<Vec<_>>>()?;
    let name = match given {
        [one] if checkpoints.len() == 1 && views.is_identity() => one.display().to_string(),
        [one] if checkpoints.len() == 1 => {
            format!("{}, each image seen through {} test-time views ({views})", one.display(), views.len())
        }
        _ => models.describe(),
    };
    Ok(Some(DrawingModel { name, checkpoints }))
}

/// Serves the web app until the process is stopped.
pub fn run(args: &ServeArgs) -> Result<()> {
    check_range("--max-batch", args.max_batch, 1, MAX_BATCH)?;
    check_range("--queue", args.queue, 1, MAX_QUEUE)?;
    if let Some(threads) = args.threads {
        check_range("--threads", threads, 1, MAX_THREADS)?;
        tch::set_num_threads(threads as i32);
    }
    let limits = limits(args)?;
    let device = args.device.resolve()?;
    let checkpoint = drawing_model(&args.checkpoint, device, &args.tta)?;
    let backend =
        Arc::new(TchBackend { device, views: args.tta.clone(), data: args.data.clone(), test_sets: Mutex::default() });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on --addr {}", args.addr))?;
        let address = listener.local_addr()?;
        let reach = if address.ip().is_loopback() {
            "this machine only; --addr 0.0.0.0:PORT serves other machines too"
        } else {
            "reachable from other machines"
        };
        // Tests and scripts read this line for the port.
        println!("serving on http://{address}/ ({reach}; symbolic links under --runs are not followed)");
        use std::io::Write;
        std::io::stdout().flush()?;
        tracing::info!("runs: {}, device: {}", args.runs.display(), model::device::describe(device));
        let config = ServeConfig {
            address,
            limits,
            runs_dir: args.runs.clone(),
            layout: crate::run_dir::LAYOUT,
            recipe_defaults: crate::train::default_recipe(),
            checkpoint,
            batcher: BatcherConfig { max_batch: args.max_batch, queue: args.queue },
        };
        serve::serve(listener, AppState::new(config, backend)).await.context("serving")
    })
}
