//! The network's worker: one thread, off the async runtime, fed by a
//! bounded queue. Each time it is free it takes every request waiting (up to
//! [`BatcherConfig::max_batch`] images) and runs them through the network in
//! one forward pass per model (a checkpoint, or an ensemble's), as inference servers batch dynamically:
//! under load a forward pass serves many requests, so throughput grows with
//! load while a lone request still goes straight through.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use tokio::sync::oneshot;

use crate::files::FileStamp;
use crate::{Backend, Model, PIXELS};

/// How the worker batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Most images in one forward pass (1: no batching, one request per pass).
    pub max_batch: usize,
    /// Requests waiting at most; more are refused as busy.
    pub queue: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self { max_batch: 256, queue: 1024 }
    }
}

/// What a prediction request gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// One row of class probabilities per image of the request.
    pub probabilities: Vec<Vec<f32>>,
    /// The class names of the network that answered.
    pub class_names: Vec<String>,
    /// Images in the forward pass that answered (this request's and others').
    pub batch_images: usize,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The queue is full.
    #[error("the server is busy: {0} requests are waiting; try again")]
    Busy(usize),
    /// The worker has stopped.
    #[error("the prediction worker has stopped")]
    Stopped,
    /// The checkpoint could not be loaded or the network failed.
    #[error("{0}")]
    Model(String),
}

struct Job {
    checkpoints: Vec<PathBuf>,
    pixels: Vec<f32>,
    reply: oneshot::Sender<Result<Answer, BatchError>>,
}

/// A handle to the worker; cheap to clone.
#[derive(Debug, Clone)]
pub struct Batcher {
    sender: SyncSender<Job>,
    queue: usize,
}

impl Batcher {
    /// Starts the worker thread.
    pub fn start(backend: Arc<dyn Backend>, config: BatcherConfig) -> Self {
        let (sender, receiver) = sync_channel(config.queue.max(1));
        std::thread::Builder::new()
            .name("predict".into())
            .spawn(move || work(backend.as_ref(), &receiver, config.max_batch.max(1)))
            .expect("cannot start the prediction thread");
        Self { sender, queue: config.queue }
    }

    /// Classifies `pixels` (`n * 784` values) with the network of
    /// `checkpoints` (several: their ensemble), sharing a forward pass with
    /// whatever else is waiting for the same model.
    pub async fn predict(&self, checkpoints: &[PathBuf], pixels: Vec<f32>) -> Result<Answer, BatchError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { checkpoints: checkpoints.to_vec(), pixels, reply };
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(BatchError::Busy(self.queue)),
            Err(TrySendError::Disconnected(_)) => return Err(BatchError::Stopped),
        }
        answer.await.unwrap_or(Err(BatchError::Stopped))
    }
}

/// A loaded network, or why it did not load, and the version of each file
/// it came from: a checkpoint that fails is not read again until it changes.
struct Cached {
    stamps: Vec<Option<FileStamp>>,
    model: Result<Box<dyn Model>, String>,
}

/// The network of `checkpoints`, loaded again when any of the files has
/// changed (a training run wrote a new `best.safetensors`).
fn model<'a>(
    backend: &dyn Backend,
    cache: &'a mut HashMap<Vec<PathBuf>, Cached>,
    checkpoints: &[PathBuf],
) -> Result<&'a mut Box<dyn Model>, String> {
    let now: Vec<Option<FileStamp>> = checkpoints
        .iter()
        .map(|checkpoint| std::fs::metadata(checkpoint).ok().map(|metadata| FileStamp::of(&metadata)))
        .collect();
    let missing = now.iter().any(Option::is_none);
    let stale = cache.get(checkpoints).is_none_or(|cached| cached.stamps != now || missing);
    if stale {
        let model = backend.load(checkpoints);
        match &model {
            Ok(_) => tracing::info!("loaded {}", describe(checkpoints)),
            Err(error) => tracing::warn!("{error}"),
        }
        cache.insert(checkpoints.to_vec(), Cached { stamps: now, model });
    }
    cache.get_mut(checkpoints).expect("inserted above").model.as_mut().map_err(|error| error.clone())
}

/// The log's name for a model: its file, or its members' count and first file.
fn describe(checkpoints: &[PathBuf]) -> String {
    match checkpoints {
        [only] => only.display().to_string(),
        [first, ..] => format!("an ensemble of {} checkpoints ({}, ...)", checkpoints.len(), first.display()),
        [] => "no checkpoint".to_owned(),
    }
}

fn work(backend: &dyn Backend, receiver: &Receiver<Job>, max_batch: usize) {
    let mut cache: HashMap<Vec<PathBuf>, Cached> = HashMap::new();
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        let mut images = jobs[0].pixels.len() / PIXELS;
        while images < max_batch {
            match receiver.try_recv() {
                Ok(job) => {
                    images += job.pixels.len() / PIXELS;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut by_model: HashMap<Vec<PathBuf>, Vec<Job>> = HashMap::new();
        for job in jobs {
            by_model.entry(job.checkpoints.clone()).or_default().push(job);
        }
        for (checkpoints, jobs) in by_model {
            run_batch(backend, &mut cache, &checkpoints, jobs);
        }
    }
}

/// One forward pass for `jobs`, every job answered.
fn run_batch(
    backend: &dyn Backend,
    cache: &mut HashMap<Vec<PathBuf>, Cached>,
    checkpoints: &[PathBuf],
    jobs: Vec<Job>,
) {
    let model = match model(backend, cache, checkpoints) {
        Ok(model) => model,
        Err(error) => {
            for job in jobs {
                let _ = job.reply.send(Err(BatchError::Model(error.clone())));
            }
            return;
        }
    };
    let pixels: Vec<f32> = jobs.iter().flat_map(|job| job.pixels.iter().copied()).collect();
    let batch_images = pixels.len() / PIXELS;
    match model.probabilities(&pixels) {
        Ok(mut rows) => {
            let class_names = model.class_names().to_vec();
            for job in jobs {
                let rest = rows.split_off((job.pixels.len() / PIXELS).min(rows.len()));
                let mine = std::mem::replace(&mut rows, rest);
                let answer = Answer { probabilities: mine, class_names: class_names.clone(), batch_images };
                // A client that went away has dropped its receiver: nothing to do.
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(error) => {
            for job in jobs {
                let _ = job.reply.send(Err(BatchError::Model(error.clone())));
            }
        }
    }
}
