//! Augmentation off the critical path: a producer thread gathers and augments
//! the next batches of an epoch while the network trains on the current one.
//! The queue between them is bounded, so at most `prefetch` batches wait in
//! memory. With more than one augmentation thread the producer hands each
//! batch to a rayon pool; with one (the default) it augments by itself with
//! the augment crate's serial batch call, without a pool, whose idle workers
//! would spin and take CPU from libtorch (`docs/PERFORMANCE.md`).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use augment::original::Scratch;
use augment::{AugmentError, Augmenter};
use idx::mnist::Split;
use ndarray::{Array3, Axis};

/// One training batch, augmented.
#[derive(Debug)]
pub struct Batch {
    /// Its step within the epoch (0-based).
    pub step_in_epoch: u64,
    /// Pixels, `[batch_size, rows, cols]` in row-major order.
    pub images: Vec<f32>,
    /// Labels, one per image.
    pub labels: Vec<i64>,
}

/// What a producer needs to make an epoch's batches.
#[derive(Debug, Clone)]
pub struct EpochPlan {
    /// The epoch (0-based): augmentation depends on it.
    pub epoch: u64,
    /// The order of the training images this epoch (indices into the split).
    pub order: Arc<Vec<usize>>,
    /// Images per batch.
    pub batch_size: usize,
    /// The first step to produce (non-zero when resuming inside an epoch).
    pub first_step: u64,
    /// Steps in the epoch.
    pub n_steps: u64,
}

/// The batches of one epoch, in step order, made ahead on another thread.
#[derive(Debug)]
pub struct EpochBatches {
    receiver: Option<Receiver<Result<Batch, AugmentError>>>,
    producer: Option<JoinHandle<()>>,
}

impl EpochBatches {
    /// Starts producing the batches of `plan` from `train`, augmented by
    /// `augmenter` on `pool` (on the producer thread itself if `None`), at
    /// most `prefetch` ahead of the consumer.
    pub fn spawn(
        train: Arc<Split>,
        augmenter: Augmenter,
        pool: Option<Arc<rayon::ThreadPool>>,
        plan: EpochPlan,
        prefetch: usize,
    ) -> Self {
        let (sender, receiver) = sync_channel(prefetch.max(1));
        let producer = std::thread::Builder::new()
            .name(format!("augment-epoch-{}", plan.epoch))
            .spawn(move || produce(&train, &augmenter, pool.as_deref(), &plan, &sender))
            .ok();
        Self { receiver: Some(receiver), producer }
    }
}

fn produce(
    train: &Split,
    augmenter: &Augmenter,
    pool: Option<&rayon::ThreadPool>,
    plan: &EpochPlan,
    sender: &SyncSender<Result<Batch, AugmentError>>,
) {
    let (_, rows, cols) = train.images.dim();
    let mut scratch = Scratch::new();
    for step_in_epoch in plan.first_step..plan.n_steps {
        let start = step_in_epoch as usize * plan.batch_size;
        let indices = &plan.order[start..start + plan.batch_size];
        let originals = train.images.select(Axis(0), indices);
        let image_indices: Vec<u64> = indices.iter().map(|&index| index as u64).collect();
        let mut augmented = Array3::<f32>::zeros((plan.batch_size, rows, cols));
        let result = match pool {
            Some(pool) => pool.install(|| {
                augmenter.augment_batch(originals.view(), &image_indices, plan.epoch, augmented.view_mut())
            }),
            None => augmenter.augment_batch_serial(
                originals.view(),
                &image_indices,
                plan.epoch,
                &mut scratch,
                augmented.view_mut(),
            ),
        }
        .map(|()| Batch {
            step_in_epoch,
            images: augmented.into_raw_vec_and_offset().0,
            labels: indices.iter().map(|&index| i64::from(train.labels[index])).collect(),
        });
        let failed = result.is_err();
        // The consumer hung up (interrupted, or failed): stop quietly.
        if sender.send(result).is_err() || failed {
            return;
        }
    }
}

impl Iterator for EpochBatches {
    type Item = Result<Batch, AugmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        // Hang up first so a producer blocked on a full queue wakes and stops.
        drop(self.receiver.take());
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array1;

    use super::*;

    fn split(n_images: usize) -> Arc<Split> {
        let images = Array3::from_shape_fn((n_images, 28, 28), |(image, row, col)| {
            ((image * 7 + row * 3 + col) % 11) as f32 / 10.0
        });
        let labels = Array1::from_shape_fn(n_images, |image| (image % 10) as u8);
        Arc::new(Split { images, labels })
    }

    fn pool() -> Option<Arc<rayon::ThreadPool>> {
        Some(Arc::new(rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap()))
    }

    #[test]
    fn batches_follow_the_order_and_match_direct_augmentation() {
        let train = split(40);
        let order: Vec<usize> = (0..40).rev().collect();
        let augmenter = Augmenter::new(augment::Pipeline::seed(), 9);
        let plan = EpochPlan { epoch: 2, order: Arc::new(order.clone()), batch_size: 8, first_step: 1, n_steps: 5 };
        let batches: Vec<Batch> = EpochBatches::spawn(train.clone(), augmenter.clone(), pool(), plan.clone(), 2)
            .map(Result::unwrap)
            .collect();
        // On the producer thread alone, the same batches.
        let alone: Vec<Batch> =
            EpochBatches::spawn(train.clone(), augmenter.clone(), None, plan, 2).map(Result::unwrap).collect();
        for (pooled, single) in batches.iter().zip(&alone) {
            assert_eq!(
                (pooled.step_in_epoch, &pooled.images, &pooled.labels),
                (single.step_in_epoch, &single.images, &single.labels)
            );
        }
        assert_eq!(batches.iter().map(|batch| batch.step_in_epoch).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        let third = &batches[1];
        let indices = &order[16..24];
        assert_eq!(third.labels, indices.iter().map(|&index| (index % 10) as i64).collect::<Vec<_>>());
        let originals = train.images.select(Axis(0), indices);
        let mut expected = Array3::<f32>::zeros((8, 28, 28));
        let image_indices: Vec<u64> = indices.iter().map(|&index| index as u64).collect();
        augmenter.augment_batch(originals.view(), &image_indices, 2, expected.view_mut()).unwrap();
        assert_eq!(third.images, expected.into_raw_vec_and_offset().0);
    }

    #[test]
    fn dropping_the_consumer_early_stops_the_producer() {
        let plan =
            EpochPlan { epoch: 0, order: Arc::new((0..400).collect()), batch_size: 4, first_step: 0, n_steps: 100 };
        let mut batches =
            EpochBatches::spawn(split(400), Augmenter::new(augment::Pipeline::none(), 0), pool(), plan, 1);
        assert_eq!(batches.next().unwrap().unwrap().step_in_epoch, 0);
        // Dropping joins the producer: this returns only if it stopped.
        drop(batches);
    }
}
