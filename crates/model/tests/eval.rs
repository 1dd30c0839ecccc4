//! Evaluation in batches counts every image exactly once.

use model::{Architecture, Network, evaluate, predict};
use tch::{Device, Kind, Reduction, Tensor};

#[test]
fn batched_evaluation_equals_one_big_batch_for_any_batch_size() {
    tch::manual_seed(20);
    let network = Network::new(Architecture::Intended, Device::Cpu);
    let images = Tensor::rand([1003, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [1003], (Kind::Int64, Device::Cpu));
    let logits = tch::no_grad(|| network.forward(&images, false));
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
    let network = Network::new(Architecture::Intended, Device::Cpu);
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
}
