//! Evaluation in batches counts every image exactly once; bad inputs and libtorch failures are typed errors.

use model::{Adam, AdamConfig, Architecture, ModelError, Network, evaluate, predict, train_step};
use tch::{Device, Kind, Reduction, Tensor};

#[test]
fn batched_evaluation_equals_one_big_batch_for_any_batch_size() {
    tch::manual_seed(20);
    let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    let images = Tensor::rand([1003, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [1003], (Kind::Int64, Device::Cpu));
    let logits = tch::no_grad(|| network.forward(&images, false).unwrap());
    let n_correct = logits.argmax(-1, false).eq_tensor(&labels).sum(Kind::Int64).int64_value(&[]) as u64;
    let loss_sum = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Sum, -100, 0.0).double_value(&[]);
    for batch_size in [1, 50, 100, 1003, 5000] {
        let evaluation = evaluate(&network, &images, &labels, batch_size).unwrap();
        assert_eq!(evaluation.n_images, 1003, "batch {batch_size}");
        assert_eq!(evaluation.n_correct, n_correct, "batch {batch_size}");
        assert!((evaluation.loss_sum - loss_sum).abs() < 1e-3, "batch {batch_size}");
        assert!((evaluation.accuracy() - n_correct as f64 / 1003.0).abs() < 1e-15);
    }
    let expected = Vec::<i64>::try_from(logits.argmax(-1, false)).unwrap();
    for batch_size in [1, 64, 5000] {
        assert_eq!(predict(&network, &images, batch_size).unwrap(), expected, "batch {batch_size}");
    }
    assert!(predict(&network, &images, 0).unwrap_err().to_string().contains("batch size 0"));
}

#[test]
fn bad_inputs_are_errors() {
    let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    let images = Tensor::rand([4, 28, 28], (Kind::Float, Device::Cpu));
    let message =
        evaluate(&network, &images, &Tensor::zeros([3], (Kind::Int64, Device::Cpu)), 2).unwrap_err().to_string();
    assert!(message.contains("4 images") && message.contains("labels of shape [3]"), "{message}");
    let message =
        evaluate(&network, &images, &Tensor::zeros([4], (Kind::Int64, Device::Cpu)), 0).unwrap_err().to_string();
    assert!(message.contains("batch size 0"), "{message}");
    let wrong = Tensor::rand([4, 27, 27], (Kind::Float, Device::Cpu));
    let message =
        evaluate(&network, &wrong, &Tensor::zeros([4], (Kind::Int64, Device::Cpu)), 2).unwrap_err().to_string();
    assert!(message.contains("expected [N, 28, 28]"), "{message}");
    // 14x56 has 784 pixels too, but it is not the network's layout.
    let flat = Tensor::rand([4, 14, 56], (Kind::Float, Device::Cpu));
    let error = evaluate(&network, &flat, &Tensor::zeros([4], (Kind::Int64, Device::Cpu)), 2).unwrap_err();
    assert!(matches!(&error, ModelError::ImageShape { found } if found == &[4, 14, 56]), "{error}");
    let error = predict(&network, &Tensor::rand([0, 28, 28], (Kind::Float, Device::Cpu)), 2).unwrap_err();
    assert!(matches!(error, ModelError::ImageShape { .. }), "{error}");
    let error = predict(&network, &images, 0).unwrap_err();
    assert!(matches!(error, ModelError::BatchSize { what: "prediction", found: 0 }), "{error}");
}

#[test]
fn libtorch_failures_are_errors_not_panics() {
    // A label outside the ten classes makes libtorch's loss fail: an error the caller can report.
    let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    let images = Tensor::rand([4, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 12, 3, 4]);
    let error = evaluate(&network, &images, &labels, 4).unwrap_err();
    assert!(matches!(error, ModelError::Libtorch { .. }), "{error}");
    let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
    let error = train_step(&network, &mut optimizer, &images, &labels).unwrap_err();
    assert!(error.to_string().starts_with("libtorch: computing the loss"), "{error}");
    let error = train_step(&network, &mut optimizer, &images, &Tensor::from_slice(&[1i64, 2])).unwrap_err();
    assert!(matches!(&error, ModelError::LabelShape { n_images: 4, found } if found == &[2]), "{error}");
}
