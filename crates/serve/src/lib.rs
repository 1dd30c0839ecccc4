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
pub mod runs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use api::router;
pub use batcher::{Batcher, BatcherConfig};
pub use runs::RunLayout;

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
    /// Loads the network of a checkpoint file.
    fn load(&self, checkpoint: &Path) -> Result<Box<dyn Model>, String>;
    /// The data set a checkpoint was trained on, from its header alone
    /// (it decides how uploaded images are prepared).
    fn dataset(&self, checkpoint: &Path) -> Result<String, String>;
    /// The test set of a data set (for the mistakes view).
    fn test_set(&self, dataset: &str) -> Result<TestSet, String>;
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The folder whose subfolders are run directories.
    pub runs_dir: PathBuf,
    /// The names of the files in a run directory.
    pub layout: runs::RunLayout,
    /// The drawing model when given; else the newest finished run's best checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// The batching worker's settings.
    pub batcher: BatcherConfig,
}

/// Everything a request handler needs, shared.
#[derive(Clone)]
pub struct AppState {
    config: Arc<ServeConfig>,
    backend: Arc<dyn Backend>,
    batcher: Batcher,
    mistakes: Arc<tokio::sync::Mutex<api::MistakesCache>>,
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
        Self { config: Arc::new(config), backend, batcher, mistakes: Default::default() }
    }
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!("serving on http://{address}/");
    axum::serve(listener, router(state)).await
}
