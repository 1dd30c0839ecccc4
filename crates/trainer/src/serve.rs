//! `trainer serve`: the web app of the `serve` crate, with libtorch
//! networks (`model`) and the data set's test images behind it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use model::{Network, checkpoint, probabilities};
use serve::{AppState, Backend, BatcherConfig, Model, ServeConfig, TestSet};
use tch::{Device, Tensor};

use crate::cli::{DataArgs, MAX_BATCH, MAX_QUEUE, MAX_THREADS, ServeArgs, check_range};

struct TchModel {
    network: Network,
    class_names: Vec<String>,
    dataset: String,
}

impl Model for TchModel {
    fn probabilities(&mut self, pixels: &[f32]) -> Result<Vec<Vec<f32>>, String> {
        let n = (pixels.len() / serve::PIXELS) as i64;
        let images = Tensor::from_slice(pixels).view([n, serve::SIDE as i64, serve::SIDE as i64]);
        probabilities(&self.network, &images, 512).map_err(|error| error.to_string())
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
    data: DataArgs,
    test_sets: Mutex<HashMap<String, TestSet>>,
}

impl Backend for TchBackend {
    fn load(&self, path: &Path) -> Result<Box<dyn Model>, String> {
        let loaded = crate::inference::load(path, self.device, false).map_err(|error| format!("{error:#}"))?;
        Ok(Box::new(TchModel {
            network: loaded.network,
            class_names: loaded.meta.dataset.class_names,
            dataset: loaded.meta.dataset.name,
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

/// Serves the web app until the process is stopped.
pub fn run(args: &ServeArgs) -> Result<()> {
    check_range("--max-batch", args.max_batch, 1, MAX_BATCH)?;
    check_range("--queue", args.queue, 1, MAX_QUEUE)?;
    if let Some(threads) = args.threads {
        check_range("--threads", threads, 1, MAX_THREADS)?;
        tch::set_num_threads(threads as i32);
    }
    let limits = limits(args)?;
    // The file named on the command line is trusted as given, links included: resolved once here.
    let checkpoint = match &args.checkpoint {
        Some(path) => {
            checkpoint::read_meta(path)?;
            Some(std::fs::canonicalize(path).with_context(|| format!("{}: cannot resolve", path.display()))?)
        }
        None => None,
    };
    let device = args.device.resolve()?;
    let backend = Arc::new(TchBackend { device, data: args.data.clone(), test_sets: Mutex::default() });
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
