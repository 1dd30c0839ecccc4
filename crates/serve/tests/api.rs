//! The API against a stand-in network: answers, every kind of bad request,
//! run names that try to leave `--runs`, live records, and dynamic batching.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use serve::{AppState, Backend, BatcherConfig, Model, PIXELS, RunLayout, ServeConfig, TestSet, router};
use tower::ServiceExt;

/// The trainer's run-directory layout (the trainer passes its own; these tests stand alone).
const LAYOUT: RunLayout =
    RunLayout { best_checkpoint: "best.safetensors", metrics: "metrics.jsonl", config: "config.json" };

/// Predicts class `k` where `k` is the number of rows with ink, mod 10,
/// taking `delay` per forward pass and recording each pass's size.
struct FakeModel {
    names: Vec<String>,
    passes: Arc<Mutex<Vec<usize>>>,
    delay: Duration,
}

impl Model for FakeModel {
    fn probabilities(&mut self, pixels: &[f32]) -> Result<Vec<Vec<f32>>, String> {
        std::thread::sleep(self.delay);
        self.passes.lock().unwrap().push(pixels.len() / PIXELS);
        Ok(pixels
            .chunks(PIXELS)
            .map(|image| {
                let rows = image.chunks(28).filter(|row| row.iter().any(|&v| v > 0.5)).count();
                let mut row = vec![0.02f32; 10];
                row[rows % 10] = 0.82;
                row
            })
            .collect())
    }
    fn class_names(&self) -> &[String] {
        &self.names
    }
    fn dataset(&self) -> &str {
        "mnist"
    }
}

struct FakeBackend {
    passes: Arc<Mutex<Vec<usize>>>,
    delay: Duration,
}

impl Backend for FakeBackend {
    fn load(&self, checkpoint: &Path) -> Result<Box<dyn Model>, String> {
        if std::fs::read(checkpoint).map_err(|error| error.to_string())? != b"checkpoint" {
            return Err(format!("{}: not a checkpoint", checkpoint.display()));
        }
        let names = (0..10).map(|digit| digit.to_string()).collect();
        Ok(Box::new(FakeModel { names, passes: self.passes.clone(), delay: self.delay }))
    }
    fn dataset(&self, _: &Path) -> Result<String, String> {
        Ok("mnist".into())
    }
    fn test_set(&self, _: &str) -> Result<TestSet, String> {
        // Image i has i rows of ink and label 0: all but image 0 (and 10) are mistakes.
        let mut pixels = vec![0.0; 12 * PIXELS];
        for image in 0..12 {
            for row in 0..image {
                pixels[image * PIXELS + row * 28] = 1.0;
            }
        }
        Ok(TestSet { pixels, labels: vec![0; 12] })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    runs: PathBuf,
    state: AppState,
    passes: Arc<Mutex<Vec<usize>>>,
}

fn fixture(delay: Duration, max_batch: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let run = runs.join("alpha");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join(LAYOUT.best_checkpoint), b"checkpoint").unwrap();
    std::fs::write(
        run.join(LAYOUT.metrics),
        "{\"epoch\":0,\"loss\":0.5,\"validation_accuracy\":0.9,\"best_epoch\":0}\n",
    )
    .unwrap();
    std::fs::write(runs.join("secret.txt"), b"outside any run").unwrap();
    let passes = Arc::new(Mutex::new(Vec::new()));
    let backend = Arc::new(FakeBackend { passes: passes.clone(), delay });
    let config = ServeConfig {
        runs_dir: runs.clone(),
        layout: LAYOUT,
        checkpoint: None,
        batcher: BatcherConfig { max_batch, queue: 64 },
    };
    Fixture { _dir: dir, runs, state: AppState::new(config, backend), passes }
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) })))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path).header("content-type", content_type).body(body.into()).unwrap()
}

/// A 28x28 array with ink in the first `rows` rows.
fn pixels(rows: usize) -> Vec<f32> {
    (0..PIXELS).map(|index| if index / 28 < rows { 1.0 } else { 0.0 }).collect()
}

#[tokio::test]
async fn arrays_of_floats_or_bytes_and_image_files_are_predicted() {
    let fixture = fixture(Duration::ZERO, 64);
    let (status, answer) =
        call(&fixture.state, post("/api/predict", "application/json", json!({"pixels": pixels(3)}).to_string())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["predictions"][0]["class"], 3);
    assert_eq!(answer["predictions"].as_array().unwrap().len(), 10);
    assert_eq!(answer["model"], "alpha");
    let bytes: Vec<Vec<u8>> = (0..28).map(|row| vec![if row < 5 { 255 } else { 0 }; 28]).collect();
    let (status, answer) =
        call(&fixture.state, post("/api/predict?run=alpha", "application/json", json!({"bytes": bytes}).to_string()))
            .await;
    assert_eq!((status, answer["predictions"][0]["class"].clone()), (StatusCode::OK, json!(5)));

    // An image file goes through the preprocessing: a 2:1 dark block on white becomes 20 inked rows.
    let mut image = ndarray::Array2::from_elem((60, 60), 1.0f32);
    image.slice_mut(ndarray::s![10..50, 20..40]).fill(0.0);
    let png = preprocess::encode_png(image.view());
    let (status, answer) = call(&fixture.state, post("/api/predict", "image/png", png)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["inverted"], true);
    assert_eq!(answer["input"].as_array().unwrap().len(), PIXELS);
    assert_eq!(answer["predictions"][0]["class"], 0, "20 rows of ink: 20 mod 10");
}

#[tokio::test]
async fn bad_requests_get_a_json_error_and_the_right_status() {
    let fixture = fixture(Duration::ZERO, 64);
    let state = &fixture.state;
    let mut huge_header = b"P5 100000 100000 255\n".to_vec();
    huge_header.extend([0u8; 16]);
    let too_big = vec![0u8; serve::MAX_BODY_BYTES + 1];
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (post("/api/predict", "image/png", b"not an image".to_vec()), StatusCode::BAD_REQUEST, "not an image"),
        (
            post("/api/predict", "application/octet-stream", huge_header),
            StatusCode::BAD_REQUEST,
            "refused before decoding",
        ),
        (
            post("/api/predict", "application/octet-stream", too_big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit",
        ),
        (post("/api/predict", "image/png", Vec::new()), StatusCode::BAD_REQUEST, "empty body"),
        (
            post("/api/predict", "application/json", json!({"pixels": vec![0.5; 100]}).to_string()),
            StatusCode::BAD_REQUEST,
            "has 100 values, expected 784",
        ),
        (post("/api/predict", "application/json", "{\"pixels\": [NaN]}"), StatusCode::BAD_REQUEST, "not valid JSON"),
        (
            post("/api/predict", "application/json", json!({"pixels": vec![1.5; PIXELS]}).to_string()),
            StatusCode::BAD_REQUEST,
            "expected a number from 0 to 1",
        ),
        (
            post("/api/predict", "application/json", json!({"bytes": vec![0.5; PIXELS]}).to_string()),
            StatusCode::BAD_REQUEST,
            "integer from 0 to 255",
        ),
        (
            post("/api/predict", "application/json", json!({"image": 1}).to_string()),
            StatusCode::BAD_REQUEST,
            "expected a JSON object with `pixels`",
        ),
        (
            post("/api/predict?run=nobody", "application/json", json!({"pixels": pixels(1)}).to_string()),
            StatusCode::NOT_FOUND,
            "no run called",
        ),
        (get("/api/runs/%2E%2E/metrics"), StatusCode::NOT_FOUND, "no run called \"..\""),
        (get("/api/runs/..%2Fsecret.txt/metrics"), StatusCode::NOT_FOUND, "no run called"),
        (get("/api/runs/%2Fetc/mistakes"), StatusCode::NOT_FOUND, "no run called"),
        (get("/no/such/page"), StatusCode::NOT_FOUND, "no such page"),
    ];
    let blank = preprocess::encode_png(ndarray::Array2::from_elem((40, 40), 1.0f32).view());
    let mut cases = cases;
    cases.push((post("/api/predict", "image/png", blank), StatusCode::UNPROCESSABLE_ENTITY, "no ink found"));
    for (request, expected_status, expected_text) in cases {
        let description = format!("{} {}", request.method(), request.uri());
        let (status, answer) = call(state, request).await;
        assert_eq!(status, expected_status, "{description}: {answer}");
        let message = answer["error"].as_str().unwrap_or_else(|| panic!("{description}: no JSON error: {answer}"));
        assert!(message.contains(expected_text), "{description}: {message}");
    }
}

#[tokio::test]
async fn runs_records_and_mistakes_follow_the_files() {
    let fixture = fixture(Duration::ZERO, 64);
    let (_, listing) = call(&fixture.state, get("/api/runs")).await;
    assert_eq!(listing["runs"].as_array().unwrap().len(), 1, "secret.txt is no run: {listing}");
    assert_eq!(listing["runs"][0]["name"], "alpha");
    // A record being appended: the torn line is skipped, then counted once complete.
    let metrics = fixture.runs.join("alpha").join(LAYOUT.metrics);
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"epoch\":1,\"loss\":0.3,\"valid");
    std::fs::write(&metrics, &text).unwrap();
    let (_, answer) = call(&fixture.state, get("/api/runs/alpha/metrics")).await;
    assert_eq!(
        (answer["records"]["epochs"].as_array().unwrap().len(), answer["records"]["skipped_lines"].clone()),
        (1, json!(1))
    );
    text.push_str("ation_accuracy\":0.95,\"best_epoch\":1}\n");
    std::fs::write(&metrics, &text).unwrap();
    let (_, answer) = call(&fixture.state, get("/api/runs/alpha/metrics")).await;
    assert_eq!(answer["records"]["epochs"].as_array().unwrap().len(), 2);
    let (_, listing) = call(&fixture.state, get("/api/runs")).await;
    assert_eq!(
        (listing["runs"][0]["epochs_done"].clone(), listing["runs"][0]["best_epoch"].clone()),
        (json!(2), json!(1))
    );

    let (status, answer) = call(&fixture.state, get("/api/runs/alpha/mistakes")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["test"]["n_images"].clone(), answer["test"]["n_mistakes"].clone()), (json!(12), json!(10)));
    let first = &answer["test"]["mistakes"][0];
    assert_eq!(first["pixels"].as_array().unwrap().len(), PIXELS);
    assert_eq!(first["true_class"], 0);

    // A new best checkpoint is picked up without a restart; a broken one is a clear error.
    std::fs::write(fixture.runs.join("alpha").join(LAYOUT.best_checkpoint), b"garbage").unwrap();
    let (status, answer) =
        call(&fixture.state, post("/api/predict", "application/json", json!({"pixels": pixels(2)}).to_string())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not a checkpoint"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_forward_passes() {
    let fixture = fixture(Duration::from_millis(20), 64);
    let requests = (0..40).map(|rows| {
        let state = fixture.state.clone();
        tokio::spawn(async move {
            let body = json!({"pixels": pixels(rows % 10)}).to_string();
            let (status, answer) = call(&state, post("/api/predict", "application/json", body)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["predictions"][0]["class"], rows % 10, "each request gets its own answer");
            answer["batch_images"].as_u64().unwrap()
        })
    });
    let batch_sizes: Vec<u64> = futures_join(requests).await;
    let passes = fixture.passes.lock().unwrap().clone();
    assert_eq!(passes.iter().sum::<usize>(), 40);
    assert!(passes.len() < 20, "40 concurrent requests took {} forward passes: {passes:?}", passes.len());
    assert!(batch_sizes.iter().any(|&size| size > 1));

    // With --max-batch 1 every request has a pass of its own.
    let single = self::fixture(Duration::ZERO, 1);
    for rows in 0..5 {
        call(&single.state, post("/api/predict", "application/json", json!({"pixels": pixels(rows)}).to_string()))
            .await;
    }
    assert_eq!(*single.passes.lock().unwrap(), vec![1; 5]);
}

async fn futures_join(tasks: impl Iterator<Item = tokio::task::JoinHandle<u64>>) -> Vec<u64> {
    let mut results = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        results.push(task.await.unwrap());
    }
    results
}
