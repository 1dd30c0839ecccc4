//! The API against a stand-in network: answers, every kind of bad request,
//! run names that try to leave `--runs`, live records, and dynamic batching.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use serve::{
    AppState, Backend, BatcherConfig, DrawingModel, Limits, Model, PIXELS, RunLayout, ServeConfig, TestSet, router,
};
use tower::ServiceExt;

/// The trainer's run-directory layout (the trainer passes its own; these tests stand alone).
const LAYOUT: RunLayout = RunLayout {
    best_checkpoint: "best.safetensors",
    metrics: "metrics.jsonl",
    config: "config.json",
    status: "status.json",
};

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
    /// Every file the backend read, in order.
    reads: Arc<Mutex<Vec<PathBuf>>>,
}

impl Backend for FakeBackend {
    fn load(&self, checkpoints: &[PathBuf]) -> Result<Box<dyn Model>, String> {
        for checkpoint in checkpoints {
            self.reads.lock().unwrap().push(checkpoint.clone());
            if std::fs::read(checkpoint).map_err(|error| error.to_string())? != b"checkpoint" {
                return Err(format!("{}: not a checkpoint", checkpoint.display()));
            }
        }
        let names = (0..10).map(|digit| digit.to_string()).collect();
        Ok(Box::new(FakeModel { names, passes: self.passes.clone(), delay: self.delay }))
    }
    fn dataset(&self, checkpoint: &Path) -> Result<String, String> {
        self.reads.lock().unwrap().push(checkpoint.to_path_buf());
        match std::fs::read(checkpoint).map_err(|error| error.to_string())?.as_slice() {
            b"checkpoint" => Ok("mnist".into()),
            b"klingon checkpoint" => Ok("klingon-digits".into()),
            _ => Err(format!("{}: not a checkpoint", checkpoint.display())),
        }
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
    reads: Arc<Mutex<Vec<PathBuf>>>,
}

/// The address the fixture's server claims to listen on (requests name it in `Host`).
const HOST: &str = "127.0.0.1:8080";

fn fixture(delay: Duration, max_batch: usize) -> Fixture {
    fixture_with(delay, max_batch, Limits::default())
}

fn fixture_with(delay: Duration, max_batch: usize, limits: Limits) -> Fixture {
    fixture_drawing_with(delay, max_batch, limits, |_| None)
}

/// A fixture whose drawing model `drawing` makes from the temporary folder.
fn fixture_drawing_with(
    delay: Duration,
    max_batch: usize,
    limits: Limits,
    drawing: impl FnOnce(&Path) -> Option<DrawingModel>,
) -> Fixture {
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
    let reads = Arc::new(Mutex::new(Vec::new()));
    let backend = Arc::new(FakeBackend { passes: passes.clone(), delay, reads: reads.clone() });
    let config = ServeConfig {
        address: HOST.parse().unwrap(),
        limits,
        runs_dir: runs.clone(),
        layout: LAYOUT,
        recipe_defaults: recipe_defaults(),
        checkpoint: drawing(dir.path()),
        batcher: BatcherConfig { max_batch, queue: 64 },
    };
    Fixture { _dir: dir, runs, state: AppState::new(config, backend), passes, reads }
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) })))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).header("host", HOST).body(Body::empty()).unwrap()
}

/// A POST as a client sends it, with its `Content-Length`.
fn post(path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Request<Body> {
    let body = body.into();
    Request::post(path)
        .header("host", HOST)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap()
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
            post("/api/predict", "image/x-portable-graymap", huge_header),
            StatusCode::PAYLOAD_TOO_LARGE,
            "refused before decoding",
        ),
        (post("/api/predict", "image/png", too_big), StatusCode::PAYLOAD_TOO_LARGE, "larger than the limit"),
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

/// The security headers every answer carries.
fn assert_security_headers(headers: &axum::http::HeaderMap, what: &str) {
    let policy = headers.get("content-security-policy").map(|value| value.to_str().unwrap().to_owned());
    let policy = policy.unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{what}: {policy}");
    assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff", "{what}");
}

#[tokio::test]
async fn other_sites_and_rebinding_hosts_are_refused() {
    let fixture = fixture(Duration::ZERO, 64);
    let state = &fixture.state;
    let with = |request: Request<Body>, name: &str, value: &str| {
        let (mut parts, body) = request.into_parts();
        parts.headers.insert(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        Request::from_parts(parts, body)
    };
    let json_body = || json!({"pixels": pixels(1)}).to_string();
    let png = {
        let mut image = ndarray::Array2::from_elem((60, 60), 1.0f32);
        image.slice_mut(ndarray::s![10..50, 20..40]).fill(0.0);
        preprocess::encode_png(image.view())
    };
    let no_host = Request::get("/api/runs").body(Body::empty()).unwrap();
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        // A DNS-rebinding page reaches the loopback port under its own name.
        (
            with(get("/api/runs"), "host", "attacker.example:8080"),
            StatusCode::MISDIRECTED_REQUEST,
            "is not this server",
        ),
        (with(get("/api/model"), "host", "attacker.example"), StatusCode::MISDIRECTED_REQUEST, "is not this server"),
        (with(get("/"), "host", "127.0.0.1:9999"), StatusCode::MISDIRECTED_REQUEST, "on port 8080"),
        (no_host, StatusCode::BAD_REQUEST, "no Host header"),
        // A page of another site posting to the API, as a form or with fetch.
        (
            with(post("/api/predict", "application/json", json_body()), "origin", "http://attacker.example"),
            StatusCode::FORBIDDEN,
            "another site",
        ),
        (with(post("/api/predict", "image/png", png.clone()), "origin", "null"), StatusCode::FORBIDDEN, "another site"),
        // Image bytes are decoded only when sent as an image (a CORS-free text/plain post is not).
        (post("/api/predict", "text/plain", png.clone()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "send an image file"),
        (
            post("/api/predict", "application/x-www-form-urlencoded", png.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "image/*",
        ),
        (post("/api/predict", "", png.clone()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type \"\""),
    ];
    for (request, expected_status, expected_text) in cases {
        let description = format!("{} {} {:?}", request.method(), request.uri(), request.headers());
        let response = router(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), expected_status, "{description}");
        assert_security_headers(response.headers(), &description);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{description}: not JSON"));
        assert!(answer["error"].as_str().unwrap().contains(expected_text), "{description}: {answer}");
    }
    // The page's own origin, and loopback names on the bound port, are served.
    let same_site = with(post("/api/predict", "image/png", png), "origin", &format!("http://{HOST}"));
    assert_eq!(call(state, same_site).await.0, StatusCode::OK);
    for host in ["localhost:8080", "[::1]:8080", "127.0.0.1:8080"] {
        let response = router(state.clone()).oneshot(with(get("/"), "host", host)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        assert_security_headers(response.headers(), host);
    }
}

#[tokio::test]
async fn every_error_is_json_whatever_rejects_it() {
    let fixture = fixture(Duration::ZERO, 64);
    let long = format!("/api/runs?{}", "x".repeat(9000));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (get("/api/predict"), StatusCode::METHOD_NOT_ALLOWED, "GET is not allowed on /api/predict; allowed: POST"),
        (post("/api/runs", "application/json", "{}"), StatusCode::METHOD_NOT_ALLOWED, "allowed: GET, HEAD"),
        (get(&long), StatusCode::URI_TOO_LONG, "more than the limit of 8192"),
        (get("/api/runs/%FF/metrics"), StatusCode::BAD_REQUEST, "/api/runs/%FF/metrics"),
        (get("/api/model?run=a&run=b"), StatusCode::BAD_REQUEST, "duplicate field"),
    ];
    for (request, expected_status, expected_text) in cases {
        let description = format!("{} {}", request.method(), request.uri());
        let (status, answer) = call(&fixture.state, request).await;
        assert_eq!(status, expected_status, "{description}: {answer}");
        let message = answer["error"].as_str().unwrap_or_else(|| panic!("{description}: not a JSON error: {answer}"));
        assert!(message.contains(expected_text), "{description}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_files_that_would_hang_or_flood_the_server_are_not_read() {
    let limits = Limits { max_records_bytes: 10_000, ..Limits::default() };
    let fixture = fixture_with(Duration::ZERO, 64, limits);
    let fifo_run = fixture.runs.join("fifo");
    std::fs::create_dir(&fifo_run).unwrap();
    let status = std::process::Command::new("mkfifo").arg(fifo_run.join(LAYOUT.metrics)).status();
    assert!(status.expect("mkfifo runs").success());
    let huge_run = fixture.runs.join("huge");
    std::fs::create_dir(&huge_run).unwrap();
    let record = "{\"epoch\":0,\"loss\":0.5,\"validation_accuracy\":0.9,\"best_epoch\":0}\n";
    std::fs::write(huge_run.join(LAYOUT.metrics), record.repeat(200)).unwrap();
    // A run folder and a checkpoint that link outside --runs.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join(LAYOUT.best_checkpoint), b"checkpoint").unwrap();
    std::fs::write(outside.path().join(LAYOUT.metrics), record).unwrap();
    std::os::unix::fs::symlink(outside.path(), fixture.runs.join("linked")).unwrap();
    let local = fixture.runs.join("local");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join(LAYOUT.metrics), record).unwrap();
    std::os::unix::fs::symlink(outside.path().join(LAYOUT.best_checkpoint), local.join(LAYOUT.best_checkpoint))
        .unwrap();

    let within = |request| async { tokio::time::timeout(Duration::from_secs(5), call(&fixture.state, request)).await };
    let (status, listing) = within(get("/api/runs")).await.expect("a FIFO must not hang the listing");
    assert_eq!(status, StatusCode::OK);
    let runs = listing["runs"].as_array().unwrap();
    let find = |name: &str| runs.iter().find(|run| run["name"] == name);
    assert!(find("linked").is_none(), "a linked run folder is not listed: {listing}");
    assert_eq!(find("local").unwrap()["has_checkpoint"], false, "a linked checkpoint is not used");
    assert!(find("fifo").unwrap()["problems"][0].as_str().unwrap().contains("not a regular file (a FIFO)"));
    assert!(find("huge").unwrap()["problems"][0].as_str().unwrap().contains("more than the limit of 10000 bytes"));
    let (status, answer) = within(get("/api/runs/fifo/metrics")).await.expect("no hang");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = within(get("/api/runs/huge/metrics")).await.expect("no hang");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = within(get("/api/runs/linked/metrics")).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = within(get("/api/model?run=local")).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("symbolic link"), "{answer}");
    let (status, _) = within(get("/")).await.expect("the page is served");
    assert_eq!(status, StatusCode::OK);
    assert!(fixture.reads.lock().unwrap().iter().all(|path| !path.starts_with(outside.path())));
}

#[tokio::test]
async fn a_broken_checkpoint_is_read_once_until_it_changes() {
    let fixture = fixture(Duration::ZERO, 64);
    let best = fixture.runs.join("alpha").join(LAYOUT.best_checkpoint);
    std::fs::write(&best, b"garbage, claiming a 99,999,999-byte header").unwrap();
    let png = {
        let mut image = ndarray::Array2::from_elem((60, 60), 1.0f32);
        image.slice_mut(ndarray::s![10..50, 20..40]).fill(0.0);
        preprocess::encode_png(image.view())
    };
    for _ in 0..5 {
        let (status, answer) = call(&fixture.state, post("/api/predict", "image/png", png.clone())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("not a checkpoint"), "{answer}");
        let json_request = post("/api/predict", "application/json", json!({"pixels": pixels(1)}).to_string());
        assert_eq!(call(&fixture.state, json_request).await.0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(call(&fixture.state, get("/api/runs/alpha/mistakes")).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let reads = fixture.reads.lock().unwrap().iter().filter(|path| **path == best).count();
    assert_eq!(reads, 3, "one read each for its data set, the network and the mistakes, not one per request");
    // A checkpoint of a data set this build does not know is an error, never MNIST.
    std::fs::write(&best, b"klingon checkpoint").unwrap();
    let (status, answer) = call(&fixture.state, post("/api/predict", "image/png", png.clone())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("the data set \"klingon-digits\" is unknown to this build"));
    // Once the file is fixed it is read again.
    std::fs::write(&best, b"checkpoint").unwrap();
    assert_eq!(call(&fixture.state, post("/api/predict", "image/png", png)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_drawing_ensemble_reads_every_member_and_again_when_one_changes() {
    let fixture = fixture_drawing_with(Duration::ZERO, 64, Limits::default(), |dir| {
        let members: Vec<PathBuf> = ["a.safetensors", "b.safetensors"].iter().map(|name| dir.join(name)).collect();
        for member in &members {
            std::fs::write(member, b"checkpoint").unwrap();
        }
        Some(DrawingModel { name: "an ensemble of 2".into(), checkpoints: members })
    });
    let members: Vec<PathBuf> =
        ["a.safetensors", "b.safetensors"].iter().map(|name| fixture.runs.with_file_name(name)).collect();
    let (status, model) = call(&fixture.state, get("/api/model")).await;
    assert_eq!(status, StatusCode::OK, "{model}");
    assert_eq!(model["name"], "an ensemble of 2");
    assert_eq!(model["checkpoints"], json!(members), "{model}");
    assert_eq!(model["fixed"], true);
    let request = || post("/api/predict", "application/json", json!({"pixels": pixels(4)}).to_string());
    for _ in 0..3 {
        let (status, answer) = call(&fixture.state, request()).await;
        assert_eq!((status, answer["model"].clone()), (StatusCode::OK, json!("an ensemble of 2")), "{answer}");
        assert_eq!(answer["predictions"][0]["class"], 4);
    }
    let loads_of = |member: &PathBuf| fixture.reads.lock().unwrap().iter().filter(|path| *path == member).count();
    assert_eq!((loads_of(&members[0]), loads_of(&members[1])), (1, 1), "loaded once, both members");
    // A member that changes (a run wrote a new best) reloads the ensemble; a broken one is an error naming it.
    std::fs::write(&members[1], b"garbage").unwrap();
    let (status, answer) = call(&fixture.state, request()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("b.safetensors: not a checkpoint"), "{answer}");
    // A run's own page still draws with that run alone.
    let run = post("/api/predict?run=alpha", "application/json", json!({"pixels": pixels(2)}).to_string());
    let (status, answer) = call(&fixture.state, run).await;
    assert_eq!((status, answer["model"].clone()), (StatusCode::OK, json!("alpha")), "{answer}");
}

#[tokio::test]
async fn uploads_beyond_the_budget_in_flight_are_refused() {
    let limits = Limits { max_upload_bytes_in_flight: 8 * 1024, ..Limits::default() };
    let fixture = fixture_with(Duration::ZERO, 64, limits);
    let big = json!({"pixels": vec![0.123_456_789_01f64; PIXELS]}).to_string();
    assert!(big.len() > 8 * 1024);
    let (status, answer) = call(&fixture.state, post("/api/predict", "application/json", big)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("the limit of 8192 bytes"), "{answer}");
    // A body that does not say its length reserves the whole body limit.
    let no_length = Request::post("/api/predict")
        .header("host", HOST)
        .header("content-type", "application/json")
        .body(Body::from(json!({"pixels": pixels(1)}).to_string()))
        .unwrap();
    assert_eq!(call(&fixture.state, no_length).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let small = post("/api/predict", "application/json", json!({"bytes": vec![0u8; PIXELS]}).to_string());
    assert_eq!(call(&fixture.state, small).await.0, StatusCode::OK, "what fits is served");
}

/// The recipe settings a run's `config.json` may leave out.
fn recipe_defaults() -> runfiles::Recipe {
    let defaults = json!({"augment": "seed", "batch_size": 50, "dataset": "mnist", "learning_rate": 0.001,
        "network": "intended", "precision": "fp32", "schedule": "constant", "seed": 0,
        "train_accuracy_images": 500, "train_images": null, "validation_size": 5000});
    serde_json::from_value(defaults).unwrap()
}

/// A sweep's run: its recipe (`seed`, `augment`) and one epoch, finished with `test` when given.
fn sweep_run(dir: &Path, seed: u64, augment: &str, test: Option<f64>) {
    std::fs::create_dir_all(dir).unwrap();
    let config = json!({"recipe": {"seed": seed, "augment": augment}, "settings": {"epochs": 1}});
    std::fs::write(dir.join(LAYOUT.config), config.to_string()).unwrap();
    let mut records = "{\"epoch\":0,\"loss\":0.5,\"validation_accuracy\":0.9,\"best_epoch\":0}\n".to_owned();
    if let Some(accuracy) = test {
        records.push_str(&format!("{}\n", json!({"test": {"accuracy": accuracy}})));
    }
    std::fs::write(dir.join(LAYOUT.metrics), records).unwrap();
}

#[tokio::test]
async fn sweeps_are_listed_with_their_spread_and_their_runs_open_by_name() {
    let fixture = fixture(Duration::ZERO, 64);
    let sweep = fixture.runs.join("grid");
    sweep_run(&sweep.join("seed/seed-0"), 0, "seed", Some(0.95));
    sweep_run(&sweep.join("seed/seed-1"), 1, "seed", Some(0.97));
    sweep_run(&sweep.join("none/seed-0"), 0, "none", None);
    std::fs::write(sweep.join("none/seed-0").join(LAYOUT.best_checkpoint), b"checkpoint").unwrap();
    // A run that cannot be summarised is named, not fatal; logs and deeper folders are not runs.
    sweep_run(&sweep.join("odd/seed-0"), 0, "seed", None);
    std::fs::write(sweep.join("odd/seed-0").join(LAYOUT.config), "{\"recipe\": {\"colour\": 1}}").unwrap();
    sweep_run(&sweep.join("logs/seed-9"), 9, "seed", None);
    sweep_run(&sweep.join("a/b/c"), 9, "seed", None);
    let (status, listing) = call(&fixture.state, get("/api/runs")).await;
    assert_eq!(status, StatusCode::OK);
    let mut names: Vec<&str> =
        listing["runs"].as_array().unwrap().iter().map(|run| run["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["alpha", "grid/none/seed-0", "grid/odd/seed-0", "grid/seed/seed-0", "grid/seed/seed-1"]);
    let sweeps = listing["sweeps"].as_array().unwrap();
    assert_eq!(sweeps.len(), 1, "{listing}");
    let groups = sweeps[0]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{listing}");
    assert_eq!(groups[1]["label"], json!({"augment": "seed"}));
    assert_eq!(groups[1]["runs"], json!(["grid/seed/seed-0", "grid/seed/seed-1"]));
    let spread = &groups[1]["test_accuracy"];
    assert!((spread["mean"].as_f64().unwrap() - 0.96).abs() < 1e-12, "{spread}");
    assert_eq!(
        (spread["min"].clone(), spread["max"].clone(), spread["n"].clone()),
        (json!(0.95), json!(0.97), json!(2))
    );
    assert_eq!(groups[0]["n_finished"], 0);
    let problems = sweeps[0]["problems"].as_array().unwrap();
    assert!(
        problems.len() == 1 && problems[0].as_str().unwrap().contains("grid/odd/seed-0: its recipe"),
        "{problems:?}"
    );

    // A member opens by its name, `/` encoded; its checkpoint draws.
    let (status, answer) = call(&fixture.state, get("/api/runs/grid%2Fseed%2Fseed-1/metrics")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["records"]["test"]["accuracy"], 0.97);
    let (status, answer) = call(
        &fixture.state,
        post("/api/predict?run=grid%2Fnone%2Fseed-0", "application/json", json!({"pixels": pixels(2)}).to_string()),
    )
    .await;
    assert_eq!((status, answer["predictions"][0]["class"].clone()), (StatusCode::OK, json!(2)), "{answer}");
    assert_eq!(answer["model"], "grid/none/seed-0");
    // Names outside the listing stay unknown, however they are spelt.
    for name in ["grid", "grid%2Flogs%2Fseed-9", "grid%2F..%2F..%2Falpha", "grid%2Fa%2Fb%2Fc"] {
        let (status, _) = call(&fixture.state, get(&format!("/api/runs/{name}/metrics"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
    }
}
