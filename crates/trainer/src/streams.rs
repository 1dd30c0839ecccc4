//! Every random choice of a run comes from the run's seed through its own
//! ChaCha8 stream, so that each is a pure function of `(seed, what, when)`:
//! resuming needs no generator state, and changing one use (say, the number
//! of training images) does not shift the random numbers of another.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a random stream is for. (Augmentation has its own, in `augment`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// The initial weights (libtorch's generator, seeded once).
    Init = 1,
    /// The order of the training images, per epoch.
    Shuffle = 2,
    /// The training images whose accuracy is reported, per epoch.
    TrainSample = 3,
    /// Dropout (libtorch's generator, reseeded every step).
    Dropout = 4,
}

/// The generator for `purpose` at `index` (an epoch or a step).
pub fn generator(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // 2^32 streams per purpose: epochs and steps stay far below.
    rng.set_stream(((purpose as u64) << 32) ^ index);
    rng
}

/// A seed for libtorch's global generator.
pub fn torch_seed(seed: u64, purpose: Purpose, index: u64) -> i64 {
    // libtorch takes any 64-bit value; keep it non-negative for readability in logs.
    (generator(seed, purpose, index).random::<u64>() >> 1) as i64
}

/// The order of `n_images` training images in `epoch`.
pub fn epoch_order(seed: u64, epoch: u64, n_images: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n_images).collect();
    order.shuffle(&mut generator(seed, Purpose::Shuffle, epoch));
    order
}

/// `n_sample` distinct random indices below `n_images` (all of them, in order, if fewer).
pub fn train_sample(seed: u64, epoch: u64, n_images: usize, n_sample: usize) -> Vec<usize> {
    if n_sample >= n_images {
        return (0..n_images).collect();
    }
    let mut rng = generator(seed, Purpose::TrainSample, epoch);
    rand::seq::index::sample(&mut rng, n_images, n_sample).into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_permutations_that_depend_on_seed_and_epoch_only() {
        let order = epoch_order(3, 1, 1000);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(order, epoch_order(3, 1, 1000));
        assert_ne!(order, epoch_order(3, 2, 1000));
        assert_ne!(order, epoch_order(4, 1, 1000));
    }

    #[test]
    fn purposes_and_indices_give_different_streams() {
        let first = |purpose, index| generator(7, purpose, index).random::<u64>();
        assert_ne!(first(Purpose::Shuffle, 0), first(Purpose::TrainSample, 0));
        assert_ne!(first(Purpose::Dropout, 0), first(Purpose::Dropout, 1));
        assert_eq!(torch_seed(7, Purpose::Dropout, 5), torch_seed(7, Purpose::Dropout, 5));
        assert!(torch_seed(7, Purpose::Dropout, 5) >= 0);
    }

    #[test]
    fn train_samples_are_distinct_and_in_range() {
        let sample = train_sample(1, 0, 55_000, 500);
        assert_eq!(sample.len(), 500);
        let mut unique = sample.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 500);
        assert!(sample.iter().all(|&index| index < 55_000));
        assert_eq!(train_sample(1, 0, 300, 500), (0..300).collect::<Vec<_>>());
    }
}
