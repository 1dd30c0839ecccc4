//! Loading checkpoints to run them: the command line's rule for one whose
//! numbers are not all finite (refused unless `--allow-nonfinite`; the
//! loading and the check are `model::load_for_inference`'s), and several
//! checkpoints, or folders of runs, loaded as one ensemble, seen through
//! the test-time views `--tta` names.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use model::{Checkpoint, DatasetMeta, Ensemble, Network, TestTimeAugmented, Views};
use tch::Device;

use crate::run_dir::{self, RunDir};

/// Loads a checkpoint to run its network: one whose weights, moving averages
/// or optimizer moments hold NaN or infinity is refused, naming the tensor,
/// unless `allow_nonfinite` (then it is used with a warning).
pub fn load(path: &Path, device: Device, allow_nonfinite: bool) -> Result<Checkpoint> {
    let loaded = model::load_for_inference(path, device)?;
    if let Some(error) = loaded.non_finite {
        if !allow_nonfinite {
            bail!("{}: {error}: not using it (pass --allow-nonfinite to use it anyway)", path.display());
        }
        tracing::warn!(
            "{}: {error}: using it anyway (--allow-nonfinite); its answers may be meaningless",
            path.display()
        );
    }
    Ok(loaded.checkpoint)
}

/// One member of what [`load_ensemble`] loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its checkpoint file.
    pub path: PathBuf,
    /// Its network's architecture.
    pub architecture: model::Architecture,
    /// Epochs it was trained for.
    pub epoch: u64,
}

/// One or more checkpoints loaded to answer together (one is an ensemble of
/// one), each image seen through the test-time views (`none`: the image alone).
#[derive(Debug)]
pub struct Models {
    /// Their networks, answering with the mean of their probabilities over
    /// members and views.
    pub classifier: TestTimeAugmented<Ensemble>,
    /// Each member's file and metadata, in the ensemble's order.
    pub members: Vec<Member>,
    /// The data set they were all trained on.
    pub dataset: DatasetMeta,
}

impl Models {
    /// How the command line names them: the checkpoint's path, or the
    /// number of members; and the test-time views, when there are several.
    pub fn describe(&self) -> String {
        let models = match self.members.as_slice() {
            [only] => format!("{} ({} network, {} epochs)", only.path.display(), only.architecture.name(), only.epoch),
            members => format!("an ensemble of {} checkpoints (the mean of their probabilities)", members.len()),
        };
        let views = self.classifier.views();
        if views.is_identity() {
            return models;
        }
        format!("{models}, each image seen through {} test-time views ({views})", views.len())
    }

    /// Each member alone, seen through the same views: what a member's own
    /// accuracy is measured with.
    ///
    /// # Errors
    /// A member that cannot be copied (out of memory on its device).
    pub fn member_classifiers(&self) -> Result<Vec<TestTimeAugmented<Network>>> {
        let views = self.classifier.views();
        self.classifier
            .inner()
            .members()
            .iter()
            .map(|network| Ok(TestTimeAugmented::new(network.detached_copy()?, views.clone())))
            .collect()
    }
}

/// The checkpoints `given` names, in order: a file names itself, a run
/// directory its best checkpoint, and any other folder the best checkpoint
/// of every run below it (a sweep). `default` stands for none given.
///
/// # Errors
/// A folder that holds no run, or a run without a best checkpoint.
pub fn checkpoint_paths(given: &[PathBuf], default: impl FnOnce() -> PathBuf) -> Result<Vec<PathBuf>> {
    if given.is_empty() {
        return Ok(vec![default()]);
    }
    let mut paths = Vec::new();
    for path in given {
        if !path.is_dir() {
            paths.push(path.clone());
            continue;
        }
        let best = RunDir::new(path).best_checkpoint();
        if best.exists() || path.join(run_dir::CONFIG_FILE).exists() {
            paths.push(best);
            continue;
        }
        let runs = crate::runs::run_folders(path)?;
        paths.extend(runs.iter().map(|run| RunDir::new(&path.join(run)).best_checkpoint()));
    }
    if let Some(missing) = paths.iter().find(|path| !path.exists()) {
        bail!("{}: no such checkpoint (a run that has not finished an epoch yet?)", missing.display());
    }
    Ok(paths)
}

/// Loads `paths` (see [`load`] for the rule on numbers that are not finite)
/// as one ensemble seen through `views`.
///
/// # Errors
/// A checkpoint that does not load, or members trained on different data
/// sets (naming the odd one out and the first member).
pub fn load_ensemble(paths: &[PathBuf], device: Device, allow_nonfinite: bool, views: &Views) -> Result<Models> {
    let (mut networks, mut members) = (Vec::new(), Vec::new());
    let mut dataset: Option<(PathBuf, DatasetMeta)> = None;
    for path in paths {
        let checkpoint = load(path, device, allow_nonfinite)?;
        match &dataset {
            None => dataset = Some((path.clone(), checkpoint.meta.dataset.clone())),
            Some((first, expected)) if *expected != checkpoint.meta.dataset => bail!(
                "{}: trained on {} ({}), but {} on {} ({}): an ensemble's members must share a data set and its classes",
                path.display(),
                checkpoint.meta.dataset.name,
                checkpoint.meta.dataset.class_names.join(", "),
                first.display(),
                expected.name,
                expected.class_names.join(", ")
            ),
            Some(_) => {}
        }
        members.push(Member {
            path: path.clone(),
            architecture: checkpoint.network.architecture(),
            epoch: checkpoint.meta.epoch,
        });
        networks.push(checkpoint.network);
    }
    let (_, dataset) = dataset.context("no checkpoint given")?;
    let classifier = TestTimeAugmented::new(Ensemble::new(networks)?, views.clone());
    Ok(Models { classifier, members, dataset })
}
