//! The two networks: shapes, parameter counts, the seed's variable listing,
//! batch norm and dropout behaviour, and learning.

use model::network::BATCH_NORM_MOMENTUM;
use model::{Adam, AdamConfig, Architecture, Network, evaluate, train_step};
use tch::{Device, Kind, Tensor};

fn tensor<'a>(network: &'a Network, name: &str) -> &'a Tensor {
    network.named_tensors().into_iter().find(|(spec, _)| spec.name == name).map(|(_, t)| t).unwrap()
}

/// Tests here seed libtorch's one global generator and some depend on its
/// draws (dropout masks, initial weights): one at a time, or another test's
/// `manual_seed` between two of this test's draws would replay the same mask.
fn lock_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn random_images(n: i64) -> Tensor {
    Tensor::rand([n, 28, 28], (Kind::Float, Device::Cpu))
}

#[test]
fn every_network_maps_images_to_ten_logits() {
    let _rng = lock_rng();
    tch::manual_seed(0);
    for architecture in Architecture::ALL {
        let network = Network::new(architecture, Device::Cpu).unwrap();
        for train in [false, true] {
            assert_eq!(network.forward(&random_images(7), train).unwrap().size(), [7, 10], "{architecture:?}");
        }
        assert_eq!(network.forward(&random_images(3).view([3, 1, 28, 28]), false).unwrap().size(), [3, 10]);
    }
}

#[test]
fn parameter_counts() {
    // conv1 800 + 32, conv2 51,200 + 64, fc4 3,211,264 + 1,024, fco 10,240 + 10.
    assert_eq!(Network::new(Architecture::Intended, Device::Cpu).unwrap().n_trainable_values(), 3_274_634);
    // conv1 800 + 32, conv2 1,600 + 64, fc4 12,845,056 + 1,024, fco 10,240 + 10.
    assert_eq!(Network::new(Architecture::Seed, Device::Cpu).unwrap().n_trainable_values(), 12_858_826);
    // conv1 288 + 32, conv2 18,432 + 64, conv3 36,864 + 64, conv4 73,728 + 128, fco 62,720 + 10.
    assert_eq!(Network::new(Architecture::Vgg, Device::Cpu).unwrap().n_trainable_values(), 192_330);
    // conv1 288 + 32, conv2 9,216 + 32, conv3 25,600 + 32, conv4 18,432 + 64, conv5 36,864 + 64,
    // conv6 102,400 + 64, fc7 131,072 + 128, fco 1,280 + 10.
    assert_eq!(Network::new(Architecture::Strided, Device::Cpu).unwrap().n_trainable_values(), 325_578);
}

#[test]
fn the_strided_network_lists_its_variables_by_layer() {
    let listing = Network::new(Architecture::Strided, Device::Cpu).unwrap().variable_listing();
    let expected = "\
[0/16] [conv1/weights:0] / SAHPE IS (3, 3, 1, 32)
[1/16] [conv1/BatchNorm/beta:0] / SAHPE IS (32,)
[2/16] [conv2/weights:0] / SAHPE IS (3, 3, 32, 32)
[3/16] [conv2/BatchNorm/beta:0] / SAHPE IS (32,)
[4/16] [conv3/weights:0] / SAHPE IS (5, 5, 32, 32)
[5/16] [conv3/BatchNorm/beta:0] / SAHPE IS (32,)
[6/16] [conv4/weights:0] / SAHPE IS (3, 3, 32, 64)
[7/16] [conv4/BatchNorm/beta:0] / SAHPE IS (64,)
[8/16] [conv5/weights:0] / SAHPE IS (3, 3, 64, 64)
[9/16] [conv5/BatchNorm/beta:0] / SAHPE IS (64,)
[10/16] [conv6/weights:0] / SAHPE IS (5, 5, 64, 64)
[11/16] [conv6/BatchNorm/beta:0] / SAHPE IS (64,)
[12/16] [fc7/weights:0] / SAHPE IS (1024, 128)
[13/16] [fc7/BatchNorm/beta:0] / SAHPE IS (128,)
[14/16] [fco/weights:0] / SAHPE IS (128, 10)
[15/16] [fco/biases:0] / SAHPE IS (10,)
";
    assert_eq!(listing, expected);
}

#[test]
fn the_vgg_network_lists_its_variables_by_layer() {
    let listing = Network::new(Architecture::Vgg, Device::Cpu).unwrap().variable_listing();
    let expected = "\
[0/10] [conv1/weights:0] / SAHPE IS (3, 3, 1, 32)
[1/10] [conv1/BatchNorm/beta:0] / SAHPE IS (32,)
[2/10] [conv2/weights:0] / SAHPE IS (3, 3, 32, 64)
[3/10] [conv2/BatchNorm/beta:0] / SAHPE IS (64,)
[4/10] [conv3/weights:0] / SAHPE IS (3, 3, 64, 64)
[5/10] [conv3/BatchNorm/beta:0] / SAHPE IS (64,)
[6/10] [conv4/weights:0] / SAHPE IS (3, 3, 64, 128)
[7/10] [conv4/BatchNorm/beta:0] / SAHPE IS (128,)
[8/10] [fco/weights:0] / SAHPE IS (6272, 10)
[9/10] [fco/biases:0] / SAHPE IS (10,)
";
    assert_eq!(listing, expected);
}

#[test]
fn the_seed_network_lists_exactly_the_seeds_variables() {
    let expected = "\
[0/8] [conv1/weights:0] / SAHPE IS (5, 5, 1, 32)
[1/8] [conv1/BatchNorm/beta:0] / SAHPE IS (32,)
[2/8] [conv2/weights:0] / SAHPE IS (5, 5, 1, 64)
[3/8] [conv2/BatchNorm/beta:0] / SAHPE IS (64,)
[4/8] [fc4/weights:0] / SAHPE IS (12544, 1024)
[5/8] [fc4/BatchNorm/beta:0] / SAHPE IS (1024,)
[6/8] [fco/weights:0] / SAHPE IS (1024, 10)
[7/8] [fco/biases:0] / SAHPE IS (10,)
";
    assert_eq!(Network::new(Architecture::Seed, Device::Cpu).unwrap().variable_listing(), expected);
    let intended = Network::new(Architecture::Intended, Device::Cpu).unwrap().variable_listing();
    assert!(intended.contains("[2/8] [conv2/weights:0] / SAHPE IS (5, 5, 32, 64)\n"), "{intended}");
    assert!(intended.contains("[4/8] [fc4/weights:0] / SAHPE IS (3136, 1024)\n"), "{intended}");
}

#[test]
fn initialisation_follows_the_seed() {
    let _rng = lock_rng();
    tch::manual_seed(1);
    let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    for name in ["conv1.weight", "conv2.weight", "fc4.weight"] {
        let weights = tensor(&network, name);
        let max_abs = weights.abs().max().double_value(&[]);
        let std = weights.std(true).double_value(&[]);
        // Truncated at two standard deviations of 0.01 (which also narrows the spread to about 0.0088).
        assert!(max_abs <= 0.02 && max_abs > 0.019, "{name}: max {max_abs}");
        assert!((std - 0.0088).abs() < 0.0008, "{name}: std {std}");
    }
    let limit = (6.0f64 / (1024.0 + 10.0)).sqrt();
    let fco = tensor(&network, "fco.weight").abs().max().double_value(&[]);
    assert!(fco <= limit && fco > 0.9 * limit, "Glorot uniform: max {fco}, limit {limit}");
    for name in ["bn1.bias", "bn4.bias", "fco.bias", "bn2.running_mean"] {
        assert_eq!(tensor(&network, name).abs().sum(Kind::Float).double_value(&[]), 0.0, "{name}");
    }
    assert_eq!(tensor(&network, "bn4.running_var").mean(Kind::Float).double_value(&[]), 1.0);
}

#[test]
fn batch_norm_uses_batch_statistics_in_training_and_moving_averages_in_evaluation() {
    let _rng = lock_rng();
    tch::manual_seed(2);
    let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    let images = random_images(8);

    // Evaluation: each image's logits do not depend on the rest of the batch, and nothing moves.
    let alone = network.forward(&images.narrow(0, 0, 1), false).unwrap();
    let in_batch = network.forward(&images, false).unwrap().narrow(0, 0, 1);
    assert!(alone.allclose(&in_batch, 1e-5, 1e-6, false));
    assert_eq!(tensor(&network, "bn1.running_mean").abs().sum(Kind::Float).double_value(&[]), 0.0);

    // Training: the moving averages move by m <- 0.9 m + 0.1 batch statistic, once per forward pass
    // (the variance as PyTorch and TensorFlow's fused batch norm keep it: unbiased).
    let conv1 = tch::no_grad(|| {
        images.view([8, 1, 28, 28]).conv2d::<Tensor>(tensor(&network, "conv1.weight"), None, [1, 1], [2, 2], [1, 1], 1)
    });
    let batch_mean = conv1.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
    let batch_var = conv1.var_dim([0i64, 2, 3].as_slice(), true, false);
    let _ = network.forward(&images, true).unwrap();
    let expected_mean = &batch_mean * BATCH_NORM_MOMENTUM;
    let expected_var = &batch_var * BATCH_NORM_MOMENTUM + (1.0 - BATCH_NORM_MOMENTUM);
    assert!(tensor(&network, "bn1.running_mean").allclose(&expected_mean, 1e-4, 1e-7, false));
    assert!(tensor(&network, "bn1.running_var").allclose(&expected_var, 1e-4, 1e-7, false));

    // In training mode, an image's logits do depend on its batch.
    tch::manual_seed(3);
    let alone = network.forward(&images.narrow(0, 0, 1).repeat([2, 1, 1]), true).unwrap().narrow(0, 0, 1);
    tch::manual_seed(3);
    let in_batch = network.forward(&images.narrow(0, 0, 2), true).unwrap().narrow(0, 0, 1);
    assert!(!alone.allclose(&in_batch, 1e-3, 1e-4, false));
}

#[test]
fn dropout_is_active_only_in_training() {
    let _rng = lock_rng();
    tch::manual_seed(4);
    let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    let images = random_images(4);
    let first = network.forward(&images, false).unwrap();
    assert!(first.equal(&network.forward(&images, false).unwrap()));
    // Two training passes differ by their dropout masks (the moving averages do not enter training passes).
    let (a, b) = (network.forward(&images, true).unwrap(), network.forward(&images, true).unwrap());
    assert!(!a.allclose(&b, 1e-4, 1e-6, false));
}

#[test]
fn overfits_fifty_real_digits_to_full_training_accuracy() {
    let _rng = lock_rng();
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    let mnist = idx::mnist::Mnist::load(&dir, 5_000).unwrap();
    let pixels: Vec<f32> = mnist.train.images.iter().take(50 * 784).copied().collect();
    let images = Tensor::from_slice(&pixels).view([50, 28, 28]);
    let labels = Tensor::from_slice(&mnist.train.labels.iter().take(50).map(|&l| i64::from(l)).collect::<Vec<_>>());
    for architecture in Architecture::ALL {
        tch::manual_seed(5);
        let network = Network::new(architecture, Device::Cpu).unwrap();
        let mut adam = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
        let mut last = None;
        // 100 steps: the `strided` network's three dropouts (0.4) keep its loss above 0.01 at 80.
        for _ in 0..100 {
            last = Some(train_step(&network, &mut adam, &images, &labels).unwrap());
        }
        let last = last.unwrap();
        assert_eq!(last.n_correct, 50, "{architecture:?}: {last:?}");
        assert!(last.loss < 0.01, "{architecture:?}: {last:?}");
        // The moving averages trail the weights (momentum 0.1); once the weights stop
        // moving, a few more training-mode passes bring them in, and evaluation agrees.
        tch::no_grad(|| (0..30).for_each(|_| drop(network.forward(&images, true).unwrap())));
        let evaluation = evaluate(&network, &images, &labels, 50).unwrap();
        assert_eq!(evaluation.n_correct, 50, "{architecture:?}: {evaluation:?}");
    }
}

#[test]
fn the_seed_networks_conv1_gets_no_gradient() {
    tch::manual_seed(6);
    let network = Network::new(Architecture::Seed, Device::Cpu).unwrap();
    let mut adam = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
    let before = tensor(&network, "conv1.weight").copy();
    let labels = Tensor::from_slice(&[1i64, 2, 3, 4]);
    train_step(&network, &mut adam, &random_images(4), &labels).unwrap();
    assert!(tensor(&network, "conv1.weight").equal(&before));
    assert!(!tensor(&network, "conv2.weight").grad().abs().sum(Kind::Float).double_value(&[]).eq(&0.0));
}
