//! The command line's rule for running a checkpoint whose numbers are not
//! all finite: refused unless `--allow-nonfinite` (the loading and the check
//! are `model::load_for_inference`'s).

use std::path::Path;

use anyhow::{Result, bail};
use model::Checkpoint;
use tch::Device;

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
