//! The fast kernels compute the seed's network: the network's forward pass
//! (channels-last convolutions, one-kernel leaky ReLU, pooling before the
//! activation, batch norm folded into the convolutions for evaluation)
//! against a reference written the seed's way, values and gradients; fused
//! Adam against the composite formula; gradients cleared to none; the bf16
//! training step against the fp32 one, and with the optimizer's bf16
//! shadows of the dense weights against casting them; the fused convolution tail (batch
//! norm, pooling, leaky ReLU in one node) against ATen's three calls; and the
//! fp32 tests again on a CPU capped at AVX2 (the AMD EPYC kind without AVX-512).

use model::network::{BATCH_NORM_EPSILON, BATCH_NORM_MOMENTUM, DROPOUT_PROBABILITY, LEAK};
use model::{Adam, AdamConfig, AdamKernel, Architecture, Network, Precision, train_step, train_step_in};
use tch::{Device, Kind, Tensor};

fn tensor<'a>(network: &'a Network, name: &str) -> &'a Tensor {
    network.named_tensors().into_iter().find(|(spec, _)| spec.name == name).map(|(_, t)| t).unwrap()
}

/// The seed's `lrelu(x) = 0.6 x + 0.4 |x|`.
fn seed_lrelu(x: &Tensor) -> Tensor {
    x * (0.5 * (1.0 + LEAK)) + x.abs() * (0.5 * (1.0 - LEAK))
}

/// The seed's graph, op for op in its order: convolution, batch norm, lrelu, pooling.
fn reference_forward(network: &Network, images: &Tensor, train: bool) -> Tensor {
    let t = |name: &str| tensor(network, name).shallow_clone();
    let bn = |x: &Tensor, layer: &str| {
        x.batch_norm(
            None::<&Tensor>,
            Some(&t(&format!("{layer}.bias"))),
            Some(&t(&format!("{layer}.running_mean"))),
            Some(&t(&format!("{layer}.running_var"))),
            train,
            BATCH_NORM_MOMENTUM,
            BATCH_NORM_EPSILON,
            false,
        )
    };
    let conv = |x: &Tensor, name| x.conv2d::<Tensor>(&t(name), None, [1, 1], [2, 2], [1, 1], 1);
    let pool = |x: &Tensor| x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
    let x = images.view([-1, 1, 28, 28]);
    let net = pool(&seed_lrelu(&bn(&conv(&x, "conv1.weight"), "bn1")));
    let net = pool(&seed_lrelu(&bn(&conv(&net, "conv2.weight"), "bn2"))).flatten(1, -1);
    let net = seed_lrelu(&bn(&net.linear::<Tensor>(&t("fc4.weight"), None), "bn4"));
    net.dropout(DROPOUT_PROBABILITY, train).linear(&t("fco.weight"), Some(&t("fco.bias")))
}

/// Tests here seed libtorch's one global generator: one at a time, or another
/// test's draws would change this one's dropout mask.
fn lock_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A network whose moving averages are not the initial 0 and 1, so that folding them matters.
fn trained_a_little() -> Network {
    tch::manual_seed(3);
    let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
    let mut optimizer = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
    let images = Tensor::rand([20, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [20], (Kind::Int64, Device::Cpu));
    for _ in 0..5 {
        train_step(&network, &mut optimizer, &images, &labels).unwrap();
    }
    network
}

#[test]
fn evaluation_with_folded_batch_norm_matches_the_seeds_graph() {
    let _rng = lock_rng();
    let network = trained_a_little();
    let mean = tensor(&network, "bn2.running_mean");
    assert!(mean.abs().max().double_value(&[]) > 1e-4, "the moving averages moved");
    let images = Tensor::rand([16, 28, 28], (Kind::Float, Device::Cpu));
    let (fast, reference) =
        tch::no_grad(|| (network.forward(&images, false).unwrap(), reference_forward(&network, &images, false)));
    let difference = max_difference(&fast, &reference);
    let scale = reference.abs().max().double_value(&[]);
    assert!(difference <= 1e-5 * scale.max(1.0), "logits differ by {difference} (largest {scale})");
    assert_eq!(fast.argmax(-1, false), reference.argmax(-1, false));
}

/// The logits of `forward` and the gradients of the cross-entropy loss
/// against `labels` for every trainable tensor, with dropout's one draw
/// seeded alike every time.
fn logits_and_gradients(network: &Network, labels: &Tensor, forward: &dyn Fn() -> Tensor) -> (Tensor, Vec<Tensor>) {
    tch::manual_seed(11);
    let logits = forward();
    Adam::zero_grad(&network.trainable()).unwrap();
    logits.log_softmax(-1, Kind::Float).nll_loss(labels).backward();
    let grads: Vec<Tensor> = network.trainable().iter().map(|parameter| parameter.grad().copy()).collect();
    (logits.detach(), grads)
}

/// Training mode moves the moving averages: a copy of every tensor, to give
/// each side of a comparison the same start with [`restore`].
fn snapshot(network: &Network) -> Vec<Tensor> {
    network.named_tensors().iter().map(|(_, t)| t.detach().copy()).collect()
}

fn restore(network: &Network, saved: &[Tensor]) {
    tch::no_grad(|| {
        for ((_, tensor), value) in network.named_tensors().iter().zip(saved) {
            tensor.shallow_clone().copy_(value);
        }
    })
}

const TRAINABLE: [&str; 8] =
    ["conv1.weight", "bn1.bias", "conv2.weight", "bn2.bias", "fc4.weight", "bn4.bias", "fco.weight", "fco.bias"];

#[test]
fn training_forward_and_gradients_match_the_seeds_graph() {
    let _rng = lock_rng();
    let network = trained_a_little();
    let images = Tensor::rand([12, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [12], (Kind::Int64, Device::Cpu));
    let saved = snapshot(&network);
    let (fast_logits, fast_grads) =
        logits_and_gradients(&network, &labels, &|| network.forward(&images, true).unwrap());
    restore(&network, &saved);
    let (reference_logits, reference_grads) =
        logits_and_gradients(&network, &labels, &|| reference_forward(&network, &images, true));
    let difference = max_difference(&fast_logits, &reference_logits);
    assert!(difference < 1e-4, "logits differ by {difference}: {fast_logits} {reference_logits}");
    for ((fast, reference), name) in fast_grads.iter().zip(&reference_grads).zip(TRAINABLE) {
        let scale = reference.abs().max().double_value(&[]);
        assert!(scale > 0.0, "{name} has a gradient");
        let difference = max_difference(fast, reference);
        assert!(difference <= 1e-3 * scale, "{name}: gradients differ by {difference} (largest {scale})");
    }
}

/// The cosine of the angle between two tensors' values.
fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.flatten(0, -1).to_kind(Kind::Double), b.flatten(0, -1).to_kind(Kind::Double));
    (a.dot(&b) / (a.norm() * b.norm())).double_value(&[])
}

#[test]
fn a_bf16_step_computes_the_fp32_step_to_bf16_rounding_and_keeps_fp32_state() {
    let _rng = lock_rng();
    let network = trained_a_little();
    let images = Tensor::rand([32, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [32], (Kind::Int64, Device::Cpu));
    let saved = snapshot(&network);
    let (fp32_logits, fp32_grads) =
        logits_and_gradients(&network, &labels, &|| network.forward(&images, true).unwrap());
    let fp32_state = snapshot(&network);
    restore(&network, &saved);
    let bf16_forward = || network.forward_in(&images, true, Precision::BFloat16).unwrap();
    let (bf16_logits, bf16_grads) = logits_and_gradients(&network, &labels, &bf16_forward);
    assert_eq!(bf16_logits.kind(), Kind::Float);
    // bf16 keeps 8 bits of mantissa: relative errors of a few 1e-3 per value, more after sums.
    let scale = fp32_logits.abs().max().double_value(&[]);
    let difference = max_difference(&bf16_logits, &fp32_logits);
    assert!(difference <= 0.05 * scale, "logits differ by {difference} (largest {scale})");
    assert!(difference > 0.0, "the bf16 pass computed in bf16");
    for ((bf16, fp32), name) in bf16_grads.iter().zip(&fp32_grads).zip(TRAINABLE) {
        assert_eq!(bf16.kind(), Kind::Float, "{name}'s gradient is fp32, for fp32 Adam");
        // Measured: 0.989 to 0.99999 (bn1's shift lowest: a sum over every position, with cancellations).
        let similarity = cosine(bf16, fp32);
        assert!(similarity > 0.98, "{name}: the bf16 gradient points elsewhere (cosine {similarity})");
    }
    // The moving averages stay fp32 and move as in fp32, to bf16 rounding.
    for ((spec, tensor), fp32) in network.named_tensors().iter().zip(&fp32_state) {
        assert_eq!(tensor.kind(), Kind::Float, "{}", spec.name);
        let difference = max_difference(tensor, fp32);
        assert!(difference <= 0.02 * fp32.abs().max().double_value(&[]).max(1e-3), "{}: {difference}", spec.name);
    }
    // Evaluation ignores the training precision: fp32 logits, bit for bit.
    let evaluation = tch::no_grad(|| network.forward_in(&images, false, Precision::BFloat16).unwrap());
    let fp32_evaluation = tch::no_grad(|| network.forward(&images, false).unwrap());
    assert_eq!(max_difference(&evaluation, &fp32_evaluation), 0.0);
}

/// The loss `train_step_in` computes, from a plain training forward pass.
fn training_loss(network: &Network, images: &Tensor, labels: &Tensor) -> f64 {
    let logits = network.forward_in(images, true, Precision::BFloat16).unwrap();
    logits.log_softmax(-1, Kind::Float).nll_loss(labels).double_value(&[])
}

#[test]
fn bf16_steps_with_shadow_weights_are_the_cast_steps_but_for_adams_rounding() {
    let _rng = lock_rng();
    let images = Tensor::rand([32, 28, 28], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(10, [32], (Kind::Int64, Device::Cpu));
    let fresh = || {
        tch::manual_seed(40);
        let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        let adam = Adam::new(&network.trainable(), AdamConfig::default()).unwrap();
        (network, adam)
    };
    let ((shadowed, mut with_shadows), (cast, mut without)) = (fresh(), fresh());
    without.bf16_shadows = false;
    for step in 0..4 {
        tch::manual_seed(41 + step);
        let ours = train_step_in(&shadowed, &mut with_shadows, &images, &labels, Precision::BFloat16).unwrap();
        tch::manual_seed(41 + step);
        let theirs = train_step_in(&cast, &mut without, &images, &labels, Precision::BFloat16).unwrap();
        if step == 0 {
            // Equal weights: the shadow is the cast, bit for bit, so the first losses are equal.
            assert_eq!(ours.loss.to_bits(), theirs.loss.to_bits());
        }
        assert!((ours.loss - theirs.loss).abs() <= 1e-4 * theirs.loss, "step {step}: {ours:?} vs {theirs:?}");
    }
    assert!(with_shadows.has_bf16_shadows(), "the bf16 step on this CPU (AVX2 and FMA) took the shadow path");
    assert!(!without.has_bf16_shadows());
    for ((spec, ours), (_, theirs)) in shadowed.named_tensors().into_iter().zip(cast.named_tensors()) {
        let gap = max_difference(ours, theirs) / theirs.abs().max().double_value(&[]).max(1e-3);
        assert!(gap < 1e-3, "{}: the two paths drifted apart by {gap}", spec.name);
    }
    // A weight written outside the optimizer: the next step computes with the new values.
    let _ = tch::no_grad(|| tensor(&shadowed, "fc4.weight").shallow_clone().f_mul_scalar_(0.5).unwrap());
    let plain = shadowed.detached_copy().unwrap();
    tch::manual_seed(50);
    let expected = training_loss(&plain, &images, &labels);
    tch::manual_seed(50);
    let step = train_step_in(&shadowed, &mut with_shadows, &images, &labels, Precision::BFloat16).unwrap();
    assert_eq!(step.loss.to_bits(), expected.to_bits(), "{} vs {expected}: a stale shadow", step.loss);
}

#[test]
fn bf16_is_refused_on_a_cpu_without_native_bf16_only() {
    let message = Precision::BFloat16.check_native_with(Device::Cpu, false).unwrap_err().to_string();
    assert!(message.starts_with("precision bf16: this CPU has no native bf16"), "{message}");
    Precision::BFloat16.check_native_with(Device::Cpu, true).unwrap();
    Precision::BFloat16.check_native_with(Device::Cuda(0), false).unwrap();
    Precision::Float32.check_native_with(Device::Cpu, false).unwrap();
    // The detection agrees with what Linux reports of this x86 CPU.
    #[cfg(target_arch = "x86_64")]
    assert_detection_matches_cpuinfo();
    assert_eq!("bf16".parse::<Precision>(), Ok(Precision::BFloat16));
    assert!("fp16".parse::<Precision>().unwrap_err().contains("expected fp32 or bf16"));
}

#[cfg(target_arch = "x86_64")]
fn assert_detection_matches_cpuinfo() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo (Linux) lists the CPU's flags");
    let flags = cpuinfo.lines().find(|line| line.starts_with("flags")).expect("a flags line");
    let listed = flags.split_whitespace().any(|flag| flag == "avx512_bf16" || flag == "amx_bf16");
    assert_eq!(model::network::cpu_has_native_bf16(), listed, "{flags}");
}

#[test]
fn leaky_relu_is_the_seeds_lrelu_and_its_gradient_is_one_or_the_slope() {
    let _rng = lock_rng();
    let x = (Tensor::randn([1000], (Kind::Float, Device::Cpu)) * 5.0).set_requires_grad(true);
    let y = model::network::leaky_relu(&x).unwrap();
    let seed = seed_lrelu(&x);
    assert!(max_difference(&y, &seed) <= 1e-6 * seed.abs().max().double_value(&[]));
    y.sum(Kind::Float).backward();
    let expected = x.gt(0.0).to_kind(Kind::Float) * (1.0 - LEAK) + LEAK;
    assert!(max_difference(&x.grad(), &expected) < 1e-7, "gradient 1 above zero, the slope below");
    // Errors, not panics: an integer tensor is no input for it.
    assert!(model::network::leaky_relu(&Tensor::from_slice(&[1i64, -1])).is_err());
}

#[test]
fn fused_adam_matches_the_composite_formula_within_rounding() {
    let _rng = lock_rng();
    tch::manual_seed(5);
    let shapes: [&[i64]; 4] = [&[32, 1, 5, 5], &[64], &[1024, 300], &[10]];
    let start: Vec<Tensor> =
        shapes.iter().map(|shape| Tensor::randn(*shape, (Kind::Float, Device::Cpu)) * 0.1).collect();
    // Fixed gradients (the loss is linear in the parameters), some of them tiny, so that both
    // optimizers see the same gradients at every step and only their rounding differs.
    let slopes: Vec<Tensor> =
        shapes.iter().map(|shape| Tensor::randn(*shape, (Kind::Float, Device::Cpu)).pow_tensor_scalar(3)).collect();
    let run = |kernel| {
        let parameters: Vec<Tensor> = start.iter().map(|tensor| tensor.copy().set_requires_grad(true)).collect();
        let borrowed: Vec<&Tensor> = parameters.iter().collect();
        let mut optimizer = Adam::new(&borrowed, AdamConfig::default()).unwrap();
        optimizer.kernel = kernel;
        for _ in 0..20 {
            Adam::zero_grad(&borrowed).unwrap();
            let loss = parameters
                .iter()
                .zip(&slopes)
                .map(|(p, g)| (p * g).sum(Kind::Float))
                .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |total, term| total + term);
            loss.backward();
            optimizer.step(&borrowed).unwrap();
        }
        (parameters, optimizer)
    };
    let (fused, fused_adam) = run(AdamKernel::Fused);
    let (composite, composite_adam) = run(AdamKernel::Composite);
    assert_eq!(fused_adam.step_count(), 20);
    for (index, (a, b)) in fused.iter().zip(&composite).enumerate() {
        // 20 steps of learning rate 0.001 moved every value by up to 0.02.
        assert!(max_difference(a, &start[index]) > 0.01, "parameter {index} moved");
        let difference = max_difference(a, b);
        assert!(difference < 1e-6, "parameter {index}: {difference} apart");
    }
    let moments = fused_adam.exp_avg().iter().chain(fused_adam.exp_avg_sq());
    let composite_moments = composite_adam.exp_avg().iter().chain(composite_adam.exp_avg_sq());
    for (a, b) in moments.zip(composite_moments) {
        let scale = b.abs().max().double_value(&[]);
        assert!(max_difference(a, b) <= 1e-5 * scale, "moments agree within rounding");
    }
}

#[test]
fn zero_grad_leaves_no_gradient_and_the_next_backward_stores_fresh_ones() {
    let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    (&w * 2.0).sum(Kind::Float).backward();
    assert!(w.grad().defined());
    Adam::zero_grad(&[&w]).unwrap();
    assert!(!w.grad().defined(), "cleared to none, as zero_grad(set_to_none=True)");
    (&w * 5.0).sum(Kind::Float).backward();
    assert_eq!(Vec::<f32>::try_from(&w.grad()).unwrap(), [5.0; 3], "not added to the old 2s");
}

/// Copies every tensor of `from` into `to` (same architecture).
fn copy_values(from: &Network, to: &Network) {
    tch::no_grad(|| {
        for ((_, source), (_, target)) in from.named_tensors().iter().zip(to.named_tensors()) {
            target.shallow_clone().copy_(source);
        }
    })
}

#[test]
fn the_fused_convolution_tail_matches_atens_three_calls_in_values_gradients_and_statistics() {
    let _rng = lock_rng();
    for architecture in [Architecture::Intended, Architecture::Vgg, Architecture::Strided] {
        tch::manual_seed(40);
        let mut fused = Network::new(architecture, Device::Cpu).unwrap();
        let reference = Network::new(architecture, Device::Cpu).unwrap();
        copy_values(&fused, &reference);
        fused.set_fused_kernels(true);
        // Inputs with an offset and a spread, so that the batch statistics matter, and a
        // batch whose pooled windows hold ties (whole rows of equal pixels).
        let images = Tensor::rand([16, 28, 28], (Kind::Float, Device::Cpu)) * 3.0 + 0.5;
        let _ = images.narrow(1, 0, 6).fill_(1.0);
        let labels = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
        // `logits_and_gradients` seeds dropout's draw alike on both sides.
        let run =
            |network: &Network| logits_and_gradients(network, &labels, &|| network.forward(&images, true).unwrap());
        let (fused_logits, fused_grads) = run(&fused);
        let (reference_logits, reference_grads) = run(&reference);
        let difference = max_difference(&fused_logits, &reference_logits);
        assert!(difference < 1e-4, "{architecture:?}: logits differ by {difference}");
        assert!(difference > 0.0, "{architecture:?}: bit for bit the same: the fused node did not run");
        for ((fused, reference), (spec, _)) in fused_grads
            .iter()
            .zip(&reference_grads)
            .zip(reference.named_tensors().into_iter().filter(|(spec, _)| spec.role.is_trainable()))
        {
            let scale = reference.abs().max().double_value(&[]);
            assert!(scale > 0.0, "{architecture:?}: {} has a gradient", spec.name);
            let difference = max_difference(fused, reference);
            assert!(
                difference <= 1e-3 * scale,
                "{architecture:?} {}: gradients differ by {difference} (largest {scale})",
                spec.name
            );
        }
        for ((spec, fused), (_, reference)) in fused.named_tensors().into_iter().zip(reference.named_tensors()) {
            if !spec.role.is_trainable() {
                let difference = max_difference(fused, reference);
                assert!(difference < 1e-5, "{architecture:?} {}: moving averages differ by {difference}", spec.name);
            }
        }
    }
}

#[test]
fn the_fused_convolution_tail_in_bf16_matches_atens_three_calls_to_bf16_rounding() {
    let _rng = lock_rng();
    for architecture in [Architecture::Intended, Architecture::Strided] {
        tch::manual_seed(42);
        let mut fused = Network::new(architecture, Device::Cpu).unwrap();
        let reference = Network::new(architecture, Device::Cpu).unwrap();
        copy_values(&fused, &reference);
        fused.set_fused_kernels(true);
        let images = Tensor::rand([16, 28, 28], (Kind::Float, Device::Cpu)) * 3.0 + 0.5;
        let labels = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
        let run = |network: &Network| {
            logits_and_gradients(network, &labels, &|| network.forward_in(&images, true, Precision::BFloat16).unwrap())
        };
        let (fused_logits, fused_grads) = run(&fused);
        let (reference_logits, reference_grads) = run(&reference);
        // Both sides compute in bf16; the fused node rounds once where ATen rounds after each of its three calls.
        let scale = reference_logits.abs().max().double_value(&[]);
        let difference = max_difference(&fused_logits, &reference_logits);
        assert!(difference <= 0.03 * scale, "{architecture:?}: logits differ by {difference} (largest {scale})");
        assert!(difference > 0.0, "{architecture:?}: bit for bit the same: the fused node did not run");
        for (index, (fused, reference)) in fused_grads.iter().zip(&reference_grads).enumerate() {
            let similarity = cosine(fused, reference);
            assert!(similarity > 0.99, "{architecture:?}: trainable tensor {index}'s gradient: cosine {similarity}");
        }
        for ((spec, fused), (_, reference)) in fused.named_tensors().into_iter().zip(reference.named_tensors()) {
            if !spec.role.is_trainable() {
                assert_eq!(fused.kind(), Kind::Float, "{architecture:?} {}: moving averages stay fp32", spec.name);
                let gap = max_difference(fused, reference) / reference.abs().max().double_value(&[]).max(1e-3);
                assert!(gap < 1e-2, "{architecture:?} {}: moving averages differ by {gap} (relative)", spec.name);
            }
        }
    }
}

/// The mean over `batches` of each trainable tensor's gradient error,
/// `|g - g_fp32| / |g_fp32|`, of a bf16 training pass against the fp32 one
/// of ATen's calls, from the same weights and dropout draw each time.
fn bf16_gradient_errors(network: &mut Network, fused: bool, batches: &[(Tensor, Tensor)]) -> Vec<f64> {
    let saved = snapshot(network);
    let mut errors = vec![0.0; network.trainable().len()];
    for (images, labels) in batches {
        network.set_fused_kernels(false);
        restore(network, &saved);
        let (_, reference) = logits_and_gradients(network, labels, &|| network.forward(images, true).unwrap());
        network.set_fused_kernels(fused);
        restore(network, &saved);
        let (_, bf16) =
            logits_and_gradients(network, labels, &|| network.forward_in(images, true, Precision::BFloat16).unwrap());
        for ((error, ours), exact) in errors.iter_mut().zip(&bf16).zip(&reference) {
            let gap = (ours - exact).norm().double_value(&[]) / exact.norm().double_value(&[]);
            *error += gap / batches.len() as f64;
        }
    }
    restore(network, &saved);
    errors
}

#[test]
fn the_fused_tails_bf16_gradients_are_no_further_from_fp32_than_atens_bf16_calls() {
    let _rng = lock_rng();
    let mut network = trained_a_little();
    tch::manual_seed(60);
    let batches: Vec<(Tensor, Tensor)> = (0..6)
        .map(|_| {
            let images = Tensor::rand([32, 28, 28], (Kind::Float, Device::Cpu));
            (images, Tensor::randint(10, [32], (Kind::Int64, Device::Cpu)))
        })
        .collect();
    let composite = bf16_gradient_errors(&mut network, false, &batches);
    let fused = bf16_gradient_errors(&mut network, true, &batches);
    // The fused node rounds once where ATen's calls round three times, so its
    // gradients should be at least as close to fp32's; a kernel that lost
    // precision (summing in bf16, rounding twice) would be further off.
    eprintln!("gradient errors against fp32: ATen's bf16 calls {composite:?}, fused {fused:?}");
    for ((ours, theirs), name) in fused.iter().zip(&composite).zip(TRAINABLE) {
        assert!(*theirs > 0.0 && *ours > 0.0, "{name}: both sides computed in bf16");
        assert!(
            ours <= &(1.25 * theirs),
            "{name}: the fused tail's bf16 gradient is {ours} off fp32's, ATen's {theirs}"
        );
    }
    let (ours, theirs): (f64, f64) = (fused.iter().sum(), composite.iter().sum());
    assert!(ours <= 1.05 * theirs, "over all tensors: fused {ours} against ATen's {theirs}");
}

/// ATen's, oneDNN's and MKL's kernels capped at AVX2 through the variables
/// each library reads at its first operation: what the AMD EPYC kind without
/// AVX-512 runs, emulated on any x86-64 CPU.
#[cfg(target_arch = "x86_64")]
const AVX2_CAPS: [(&str, &str); 3] =
    [("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("MKL_ENABLE_INSTRUCTIONS", "AVX2")];

/// The fp32 kernels on a CPU without AVX-512. This test binary runs the
/// tests named here again in a child process capped at AVX2 (this process
/// has long passed its libraries' first operation). PyTorch 2.11's oneDNN
/// matmul refuses fp32 products there, which once failed every fp32 training
/// step on that kind; the dense layer now falls back to `at::mm`. oneDNN's
/// own report of its instruction set shows that the cap took.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_fp32_kernels_match_the_seeds_graph_on_a_cpu_capped_at_avx2() {
    const TESTS: [&str; 3] = [
        "training_forward_and_gradients_match_the_seeds_graph",
        "evaluation_with_folded_batch_norm_matches_the_seeds_graph",
        "the_fused_convolution_tail_matches_atens_three_calls_in_values_gradients_and_statistics",
    ];
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(TESTS)
        .args(["--exact", "--test-threads", "1"])
        .envs(AVX2_CAPS)
        .env("ONEDNN_VERBOSE", "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "capped at AVX2, the kernels failed:\n{text}");
    assert!(text.contains(&format!("{} passed", TESTS.len())), "the child ran all {} tests:\n{text}", TESTS.len());
    let isa = text.lines().find(|line| line.contains("info,cpu,isa:")).unwrap_or("no oneDNN isa line");
    assert!(isa.contains("AVX2") && !isa.contains("512"), "oneDNN ran capped at AVX2: {isa}");
}
