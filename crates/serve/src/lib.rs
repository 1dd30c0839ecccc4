//! The web app of `trainer serve`: a page to draw digits and see what the
//! network thinks, to watch runs train and to look at their mistakes, and
//! the JSON API it uses (`docs/SERVE.md`). axum on tokio; the network runs
//! on a worker thread of its own behind a bounded queue that batches
//! concurrent requests into one forward pass ([`batcher`]).
//!
//! The crate knows nothing of libtorch: the caller provides a [`Backend`]
//! that loads a checkpoint's network and the test images.
#![warn(missing_docs)]

mod api;
pub mod batcher;
pub mod files;
pub mod guard;
mod limits;
pub mod runs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

pub use api::router;
pub use batcher::{Batcher, BatcherConfig};
pub use limits::Limits;
pub use runs::{RunLayout, Runs};

/// The side of the network's square input images.
pub const SIDE: usize = preprocess::SIDE;
/// Pixels of one input image.
pub const PIXELS: usize = SIDE * SIDE;
/// The largest request body accepted: 5 MB.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// A network ready to classify, on whatever device the backend chose.
pub trait Model: Send {
    /// Class probabilities of `n` images given as `n * 784` pixel values
    /// (`[0, 1]`, white ink on black): `n` rows of one value per class.
    fn probabilities(&mut self, pixels: &[f32]) -> Result<Vec<Vec<f32>>, String>;
    /// The name of each class.
    fn class_names(&self) -> &[String];
    /// The data set the network was trained on (`mnist`, `fashion-mnist`).
    fn dataset(&self) -> &str;
}

/// Test images and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSet {
    /// `n * 784` pixel values.
    pub pixels: Vec<f32>,
    /// `n` labels.
    pub labels: Vec<u8>,
}

/// What the server needs from the program around it.
pub trait Backend: Send + Sync + 'static {
    /// Loads the networks of one or more checkpoint files as one model
    /// (several answer with the mean of their probabilities: an ensemble).
    fn load(&self, checkpoints: &[PathBuf]) -> Result<Box<dyn Model>, String>;
    /// The data set a checkpoint was trained on, from its header alone
    /// (it decides how uploaded images are prepared).
    fn dataset(&self, checkpoint: &Path) -> Result<String, String>;
    /// The test set of a data set (for the mistakes view).
    fn test_set(&self, dataset: &str) -> Result<TestSet, String>;
}

/// The drawing model named on the command line: one checkpoint, or several
/// answering together as an ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawingModel {
    /// How the page names it (the path given, or the ensemble's size).
    pub name: String,
    /// Its checkpoint files, resolved once; at least one.
    pub checkpoints: Vec<PathBuf>,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The address the server listens on: bound to loopback, it answers
    /// only requests whose `Host` names loopback on this port.
    pub address: SocketAddr,
    /// The bounds on every client's time, bytes and work.
    pub limits: Limits,
    /// The folder whose subfolders are run directories.
    pub runs_dir: PathBuf,
    /// The names of the files in a run directory.
    pub layout: runs::RunLayout,
    /// The recipe settings of runs whose `config.json` predates a setting
    /// (what such runs used), for summarising sweeps.
    pub recipe_defaults: runfiles::Recipe,
    /// The drawing model when given; else the newest finished run's best checkpoint.
    pub checkpoint: Option<DrawingModel>,
    /// The batching worker's settings.
    pub batcher: BatcherConfig,
}

/// Everything a request handler needs, shared.
#[derive(Clone)]
pub struct AppState {
    config: Arc<ServeConfig>,
    backend: Arc<dyn Backend>,
    batcher: Batcher,
    runs: Arc<Runs>,
    /// Each checkpoint's data set, read from its header once per version (failures too).
    datasets: Arc<files::StampCache<Result<String, String>>>,
    mistakes: Arc<api::Mistakes>,
    /// KiB of request bodies that may be held at once (`Limits::max_upload_bytes_in_flight`).
    uploads: Arc<Semaphore>,
    /// Decodes that may run at once (`Limits::max_concurrent_decodes`).
    decodes: Arc<Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AppState").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AppState {
    /// Starts the batching worker and returns the state to serve with.
    pub fn new(config: ServeConfig, backend: Arc<dyn Backend>) -> Self {
        let batcher = Batcher::start(backend.clone(), config.batcher);
        let limits = config.limits;
        let runs = Runs::new(config.runs_dir.clone(), config.layout, limits, config.recipe_defaults.clone());
        Self {
            config: Arc::new(config),
            backend,
            batcher,
            runs: Arc::new(runs),
            datasets: Arc::default(),
            mistakes: Default::default(),
            uploads: Arc::new(Semaphore::new(limits.max_upload_bytes_in_flight.div_ceil(1024))),
            decodes: Arc::new(Semaphore::new(limits.max_concurrent_decodes.max(1))),
        }
    }
}

/// Serves on `listener` until the process ends: HTTP/1.1 connections,
/// each closed when it does not send a request head within
/// `Limits::header_timeout`, at most `Limits::max_connections` at once
/// (one more is answered 503 and closed).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!("serving on http://{address}/");
    let limits = state.config.limits;
    let app = router(state);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was taken: wait, go on.
                tracing::warn!("accepting a connection: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream, limits.max_connections));
            continue;
        };
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        tokio::spawn(async move {
            // A client that goes away or times out ends only its own connection.
            let _ = connection.await;
            drop(permit);
        });
    }
}

/// Answers 503 to a connection over the limit and closes it, within a second.
async fn refuse_busy(mut stream: tokio::net::TcpStream, max_connections: usize) {
    let answer = guard::busy_answer(max_connections);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&answer)).await;
}
