//! Checkpoints: bit-identical round trips, exact resumption, clear errors, atomic writes.

use std::collections::HashMap;

use model::checkpoint::{self, CheckpointMeta, DatasetMeta};
use model::{Adam, AdamConfig, Architecture, Ema, Network, train_step};
use tch::{Device, Kind, Tensor};

/// libtorch's random generator is global to the process, and the tests of a
/// file run in parallel threads: tests that need its exact sequence hold this.
static LIBTORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    LIBTORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn batch(seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let images = Tensor::rand([16, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
    (images, labels)
}

fn trained(architecture: Architecture, n_steps: i64) -> (Network, Adam) {
    tch::manual_seed(10);
    let network = Network::new(architecture, Device::Cpu).unwrap();
    let mut adam = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
    for step in 0..n_steps {
        let (images, labels) = batch(100 + step);
        train_step(&network, &mut adam, &images, &labels).unwrap();
    }
    (network, adam)
}

fn meta() -> CheckpointMeta {
    CheckpointMeta {
        epoch: 3,
        step: 1234,
        best_validation_accuracy: Some((0.9952, 2)),
        trainer_state: "{\"seed\":42}".into(),
        dataset: DatasetMeta {
            name: "fashion-mnist".into(),
            class_names: [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ]
            .map(String::from)
            .to_vec(),
        },
    }
}

#[test]
fn save_then_load_gives_identical_outputs_optimizer_state_and_metadata() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    for architecture in Architecture::ALL {
        let (network, adam) = trained(architecture, 3);
        let path = dir.path().join(format!("net-{}.safetensors", architecture.name()));
        checkpoint::save(&path, &network, &adam, None, &meta()).unwrap();
        let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
        assert_eq!(loaded.meta, meta());
        assert_eq!(checkpoint::read_meta(&path).unwrap(), (architecture, meta()));
        assert_eq!(loaded.network.architecture(), architecture);
        let (images, _) = batch(7);
        assert!(network.forward(&images, false).unwrap().equal(&loaded.network.forward(&images, false).unwrap()));
        for ((spec, original), (_, restored)) in network.named_tensors().into_iter().zip(loaded.network.named_tensors())
        {
            assert!(original.equal(restored), "{}", spec.name);
        }
        assert_eq!(loaded.optimizer.step_count(), 3);
        assert_eq!(loaded.optimizer.config, adam.config);
        for (original, restored) in adam.exp_avg().iter().zip(loaded.optimizer.exp_avg()) {
            assert!(original.equal(restored));
        }
        for (original, restored) in adam.exp_avg_sq().iter().zip(loaded.optimizer.exp_avg_sq()) {
            assert!(original.equal(restored));
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_resumed_run_continues_exactly_as_an_uninterrupted_one() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resume.safetensors");
    let (uninterrupted, mut adam) = trained(Architecture::Intended, 3);
    checkpoint::save(&path, &uninterrupted, &adam, None, &meta()).unwrap();
    let mut resumed = checkpoint::load(&path, Device::Cpu).unwrap();
    for step in 3..6 {
        let (images, labels) = batch(100 + step);
        // Dropout draws from libtorch's generator: give both runs the same state.
        tch::manual_seed(1000 + step);
        let a = train_step(&uninterrupted, &mut adam, &images, &labels).unwrap();
        tch::manual_seed(1000 + step);
        let b = train_step(&resumed.network, &mut resumed.optimizer, &images, &labels).unwrap();
        assert_eq!(a, b, "step {step}");
    }
    for ((spec, a), (_, b)) in uninterrupted.named_tensors().into_iter().zip(resumed.network.named_tensors()) {
        assert!(a.equal(b), "{} differs after resuming", spec.name);
    }
}

/// Writes a safetensors file with the given tensors (all F32 zeros) and metadata.
fn write_raw(path: &std::path::Path, tensors: &[(&str, Vec<usize>)], metadata: HashMap<String, String>) {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| (name.to_string(), shape.clone(), vec![0u8; 4 * shape.iter().product::<usize>()]))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap())
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (network, adam) = trained(Architecture::Seed, 0);
    let path = dir.path().join("seed.safetensors");
    checkpoint::save(&path, &network, &adam, None, &meta()).unwrap();
    // Relabel the seed network's file as the intended one: conv2 then has the wrong shape.
    let bytes = std::fs::read(&path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    metadata.insert("architecture".into(), "intended".into());
    let relabelled: Vec<(String, Vec<usize>)> =
        tensors.tensors().into_iter().map(|(name, view)| (name, view.shape().to_vec())).collect();
    let relabelled: Vec<(&str, Vec<usize>)> =
        relabelled.iter().map(|(name, shape)| (name.as_str(), shape.clone())).collect();
    let wrong = dir.path().join("wrong.safetensors");
    write_raw(&wrong, &relabelled, metadata);
    let message = checkpoint::load(&wrong, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("tensor `conv2.weight` has shape [64, 1, 5, 5], expected [64, 32, 5, 5]"), "{message}");
    assert!(message.starts_with(&wrong.display().to_string()), "{message}");
}

#[test]
fn missing_truncated_and_foreign_files_are_clear_errors() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    let message = checkpoint::load(&missing, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("missing.safetensors: cannot read"), "{message}");

    let (network, adam) = trained(Architecture::Intended, 0);
    let path = dir.path().join("full.safetensors");
    checkpoint::save(&path, &network, &adam, None, &meta()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let message = checkpoint::load(&truncated, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("truncated") || message.contains("corrupt"), "{message}");

    let foreign = dir.path().join("foreign.safetensors");
    write_raw(&foreign, &[("embedding.weight", vec![3, 2])], HashMap::new());
    let message = checkpoint::load(&foreign, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("not a checkpoint of this project"), "{message}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a checkpoint").unwrap();
    let message = checkpoint::load(&garbage, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("not a safetensors file"), "{message}");
    // The header-only reader gives the same kinds of errors.
    let message = checkpoint::read_meta(&garbage).unwrap_err().to_string();
    assert!(message.contains("garbage.safetensors: not a safetensors file"), "{message}");
    let message = checkpoint::read_meta(&foreign).unwrap_err().to_string();
    assert!(message.contains("not a checkpoint of this project"), "{message}");
    let message = checkpoint::read_meta(&missing).unwrap_err().to_string();
    assert!(message.contains("missing.safetensors: cannot read"), "{message}");
    // A header that claims 99,999,999 bytes (under safetensors' own limit) is refused unread.
    let claims = dir.path().join("claims.safetensors");
    std::fs::write(&claims, [&99_999_999u64.to_le_bytes()[..], b"{}"].concat()).unwrap();
    let message = checkpoint::read_meta(&claims).unwrap_err().to_string();
    assert!(message.contains("header claims 99999999 bytes, more than the limit of 1048576"), "{message}");
    // One that claims more than the file holds is truncated, found without allocating the claim.
    std::fs::write(&claims, [&1000u64.to_le_bytes()[..], b"{}"].concat()).unwrap();
    let message = checkpoint::read_meta(&claims).unwrap_err().to_string();
    assert!(message.contains("truncated safetensors header"), "{message}");

    // A missing tensor is named too.
    let bytes = std::fs::read(&path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let kept: Vec<(String, Vec<usize>)> = tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != "bn4.running_var")
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect();
    let kept: Vec<(&str, Vec<usize>)> = kept.iter().map(|(name, shape)| (name.as_str(), shape.clone())).collect();
    let incomplete = dir.path().join("incomplete.safetensors");
    write_raw(&incomplete, &kept, header.metadata().clone().unwrap());
    let message = checkpoint::load(&incomplete, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("tensor `bn4.running_var` is missing"), "{message}");
}

/// Rewrites a checkpoint's metadata with `change` applied, keeping its tensors.
fn with_metadata(path: &std::path::Path, out: &std::path::Path, change: impl FnOnce(&mut HashMap<String, String>)) {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    change(&mut metadata);
    let shapes: Vec<(String, Vec<usize>)> =
        tensors.tensors().into_iter().map(|(name, view)| (name, view.shape().to_vec())).collect();
    let shapes: Vec<(&str, Vec<usize>)> = shapes.iter().map(|(name, shape)| (name.as_str(), shape.clone())).collect();
    write_raw(out, &shapes, metadata);
}

#[test]
fn the_data_set_is_recorded_and_older_files_read_as_mnist() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (network, adam) = trained(Architecture::Intended, 0);
    let path = dir.path().join("fashion.safetensors");
    checkpoint::save(&path, &network, &adam, None, &meta()).unwrap();
    let (_, read) = checkpoint::read_meta(&path).unwrap();
    assert_eq!(read.dataset, meta().dataset);

    let older = dir.path().join("older.safetensors");
    with_metadata(&path, &older, |metadata| {
        metadata.remove("dataset");
        metadata.remove("class_names");
    });
    let (_, read) = checkpoint::read_meta(&older).unwrap();
    assert_eq!(read.dataset.name, "mnist");
    assert_eq!(read.dataset.class_names, (0..10).map(|digit| digit.to_string()).collect::<Vec<_>>());

    let short = dir.path().join("short.safetensors");
    with_metadata(&path, &short, |metadata| {
        metadata.insert("class_names".into(), "[\"a\", \"b\"]".into());
    });
    let message = checkpoint::load(&short, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("short.safetensors") && message.contains("`class_names` has 2 names"), "{message}");
}

#[test]
fn metadata_numbers_must_be_finite_and_counters_in_range() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (network, adam) = trained(Architecture::Intended, 0);
    let path = dir.path().join("good.safetensors");
    checkpoint::save(&path, &network, &adam, None, &meta()).unwrap();
    let cases: [(&str, &str, &str); 5] = [
        ("optimizer.learning_rate", "NaN", "metadata `optimizer.learning_rate` is NaN, expected a finite number"),
        ("optimizer.beta2", "inf", "metadata `optimizer.beta2` is inf, expected a finite number"),
        ("best_validation_accuracy", "-inf", "metadata `best_validation_accuracy` is -inf"),
        ("best_validation_accuracy", "1.5", "`best_validation_accuracy` is 1.5, expected a value in [0, 1]"),
        ("optimizer.step", "4294967296", "metadata `optimizer.step` is 4294967296, more than Adam counts"),
    ];
    for (key, value, expected) in cases {
        let bad = dir.path().join(format!("bad-{key}-{value}.safetensors"));
        with_metadata(&path, &bad, |metadata| {
            metadata.insert(key.into(), value.into());
            metadata.entry("best_epoch".into()).or_insert_with(|| "0".into());
        });
        for message in [
            checkpoint::read_meta(&bad).unwrap_err().to_string(),
            checkpoint::load(&bad, Device::Cpu).unwrap_err().to_string(),
        ] {
            assert!(message.contains(&bad.display().to_string()) && message.contains(expected), "{message}");
        }
    }
}

#[test]
fn a_state_that_is_not_finite_is_never_saved() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (network, adam) = trained(Architecture::Intended, 2);
    checkpoint::check_finite(&network, &adam, None).unwrap();
    let fc4 = network.named_tensors().into_iter().find(|(spec, _)| spec.name == "fc4.weight").unwrap().1;
    tch::no_grad(|| {
        let _ = fc4.shallow_clone().narrow(0, 3, 1).fill_(f64::NAN);
    });
    let path = dir.path().join("never.safetensors");
    let error = checkpoint::save(&path, &network, &adam, None, &meta()).unwrap_err();
    assert!(matches!(&error, model::ModelError::NonFinite { tensor } if tensor == "fc4.weight"), "{error}");
    assert!(!path.exists(), "a non-finite state was written");

    let (network, adam) = trained(Architecture::Intended, 2);
    tch::no_grad(|| {
        let _ = adam.exp_avg_sq()[2].shallow_clone().narrow(0, 0, 1).fill_(f64::INFINITY);
    });
    let error = checkpoint::check_finite(&network, &adam, None).unwrap_err();
    assert_eq!(error.to_string(), "tensor `optimizer.exp_avg_sq.conv2.weight` holds NaN or infinite values");
}

#[test]
fn a_file_larger_than_any_checkpoint_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    // Sparse: 8 GB claimed, nothing on disk; reading it whole would take 8 GB of memory.
    std::fs::File::create(&path).unwrap().set_len(8 << 30).unwrap();
    let message = checkpoint::load(&path, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("huge.safetensors: is 8589934592 bytes, more than any checkpoint"), "{message}");
    // The bound holds the largest network: the seed's, with its 12,544-input fc4.
    assert!(checkpoint::max_file_bytes() > 3 * 12_544 * 1024 * 4);
    assert!(checkpoint::max_file_bytes() < 200 << 20);
}

#[test]
fn the_weights_average_is_saved_loaded_and_used_for_inference() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let (network, adam) = trained(Architecture::Intended, 3);
    let mut ema = Ema::new(0.9, &Network::new(Architecture::Intended, Device::Cpu).unwrap()).unwrap();
    ema.update(&network, 50).unwrap();
    let path = dir.path().join("averaged.safetensors");
    checkpoint::save(&path, &network, &adam, Some(&ema), &meta()).unwrap();

    let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
    let restored = loaded.ema.as_ref().expect("the average is read back");
    assert_eq!(restored.decay(), 0.9);
    for ((spec, original), (_, read)) in
        ema.network().named_tensors().into_iter().zip(restored.network().named_tensors())
    {
        assert!(original.equal(read), "{}", spec.name);
    }
    // Training resumes from the trained weights; inference runs the average.
    let (images, _) = batch(5);
    assert!(loaded.network.forward(&images, false).unwrap().equal(&network.forward(&images, false).unwrap()));
    let inference = model::load_for_inference(&path, Device::Cpu).unwrap();
    let averaged = ema.network().forward(&images, false).unwrap();
    assert!(inference.checkpoint.network.forward(&images, false).unwrap().equal(&averaged));
    assert!(!averaged.equal(&network.forward(&images, false).unwrap()));
    // A file without an average has none; one whose average is cut out is refused naming the tensor.
    let plain = dir.path().join("plain.safetensors");
    checkpoint::save(&plain, &network, &adam, None, &meta()).unwrap();
    assert!(checkpoint::load(&plain, Device::Cpu).unwrap().ema.is_none());
    let bytes = std::fs::read(&path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        tensors.tensors().into_iter().filter(|(name, _)| name != "ema.fco.bias").collect();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, safetensors::serialize(kept, header.metadata().clone()).unwrap()).unwrap();
    let message = checkpoint::load(&cut, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("tensor `ema.fco.bias` is missing"), "{message}");
    let mut metadata = header.metadata().clone().unwrap();
    metadata.insert("ema_decay".into(), "1.5".into());
    let odd = dir.path().join("odd.safetensors");
    std::fs::write(&odd, safetensors::serialize(tensors.tensors(), Some(metadata)).unwrap()).unwrap();
    let message = checkpoint::load(&odd, Device::Cpu).unwrap_err().to_string();
    assert!(message.contains("metadata `ema_decay` is \"1.5\", expected a number in (0, 1)"), "{message}");
}
