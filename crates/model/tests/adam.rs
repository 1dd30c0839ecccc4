//! Our Adam against `torch.optim.Adam`, step for step (fixture: data/make_adam_fixture.py).

use model::{Adam, AdamConfig};
use tch::{Kind, Tensor};

fn matrix(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect()
}

fn vector(value: &serde_json::Value) -> Vec<f32> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

#[test]
fn matches_torch_optim_adam_step_for_step() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/adam.json");
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config = AdamConfig {
        learning_rate: fixture["config"]["lr"].as_f64().unwrap(),
        beta1: fixture["config"]["betas"][0].as_f64().unwrap(),
        beta2: fixture["config"]["betas"][1].as_f64().unwrap(),
        epsilon: fixture["config"]["eps"].as_f64().unwrap(),
    };
    let w = Tensor::from_slice(&matrix(&fixture["start"]["w"])).view([3, 4]).set_requires_grad(true);
    let b = Tensor::from_slice(&vector(&fixture["start"]["b"])).set_requires_grad(true);
    let x = Tensor::from_slice(&matrix(&fixture["x"])).view([5, 4]);
    let y = Tensor::from_slice(&matrix(&fixture["y"])).view([5, 3]);
    let mut adam = Adam::new(&[&w, &b], config).unwrap();
    let steps = fixture["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 25);
    for (step_idx, expected) in steps.iter().enumerate() {
        Adam::zero_grad(&[&w, &b]).unwrap();
        let residual = x.matmul(&w.tr()) + &b - &y;
        let loss = (&residual * &residual).sum(Kind::Float) + w.pow_tensor_scalar(3).sum(Kind::Float);
        loss.backward();
        adam.step(&[&w, &b]).unwrap();
        let expected_loss = expected["loss"].as_f64().unwrap();
        assert!(
            (loss.double_value(&[]) - expected_loss).abs() < 1e-5 * expected_loss.abs().max(1.0),
            "step {step_idx}"
        );
        let expected_w = Tensor::from_slice(&matrix(&expected["w"])).view([3, 4]);
        let expected_b = Tensor::from_slice(&vector(&expected["b"]));
        let worst =
            (&w - &expected_w).abs().max().double_value(&[]).max((&b - &expected_b).abs().max().double_value(&[]));
        assert!(worst < 1e-6, "step {}: max difference {worst}", step_idx + 1);
    }
    assert_eq!(adam.step_count(), 25);
}

#[test]
fn a_wrong_parameter_list_is_an_error() {
    let w = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let mut adam = Adam::new(&[&w], AdamConfig::default()).unwrap();
    let error = adam.step(&[&w, &w]).unwrap_err();
    assert_eq!(error.to_string(), "the optimizer holds state for 1 parameters but was given 2");
}
