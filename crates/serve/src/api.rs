//! The routes: the page, its assets, and the JSON API (`docs/SERVE.md`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use tokio::sync::OwnedSemaphorePermit;

use crate::batcher::BatchError;
use crate::files::{FileProblem, StampCache};
use crate::{AppState, MAX_BODY_BYTES, PIXELS};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");
/// Mistakes listed at most per run, worst first.
const MAX_MISTAKES: usize = 200;

/// An error answer: a status and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The routes of the app, behind the checks of [`crate::guard`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route("/api/model", get(model))
        .route("/api/predict", post(predict))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{name}/metrics", get(metrics))
        .route("/api/runs/{name}/mistakes", get(mistakes))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page or API route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::guard::guard))
        .with_state(state)
}

/// The methods the route of `path` answers (the `Allow` header of a 405).
pub(crate) fn allowed_methods(path: &str) -> &'static str {
    if path == "/api/predict" { "POST" } else { "GET, HEAD" }
}

/// Runs blocking file work (listing runs, reading their files) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("a worker failed: {error}")))
}

/// The run directory called `name`, or 404.
async fn run_dir(state: &AppState, name: &str) -> Result<PathBuf, ApiError> {
    let (runs, owned) = (state.runs.clone(), name.to_owned());
    blocking(move || runs.resolve(&owned))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run called {name:?} under --runs")))
}

/// The best checkpoint of the run called `name`, or 404.
async fn run_checkpoint(state: &AppState, name: &str) -> Result<PathBuf, ApiError> {
    let dir = run_dir(state, name).await?;
    let runs = state.runs.clone();
    let best = blocking(move || runs.best_checkpoint(&dir)).await?;
    let file = state.config.layout.best_checkpoint;
    best.map_err(|problem| {
        let message = match problem {
            FileProblem::Missing(_) => format!("run {name:?} has no {file} yet"),
            other => format!("run {name:?}: {other}"),
        };
        ApiError::new(StatusCode::NOT_FOUND, message)
    })
}

/// The checkpoints a request uses: its run's best, or the server's drawing
/// model (one checkpoint, or an ensemble's).
async fn checkpoints_for(state: &AppState, run: Option<&str>) -> Result<(String, Vec<PathBuf>), ApiError> {
    if let Some(name) = run {
        return Ok((name.to_owned(), vec![run_checkpoint(state, name).await?]));
    }
    if let Some(drawing) = &state.config.checkpoint {
        return Ok((drawing.name.clone(), drawing.checkpoints.clone()));
    }
    let runs = state.runs.clone();
    let default = blocking(move || runs.default_checkpoint()).await?;
    default.map(|(name, best)| (name, vec![best])).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no model: no run under {} has a {}; train one or pass --checkpoint",
                state.config.runs_dir.display(),
                state.config.layout.best_checkpoint
            ),
        )
    })
}

#[derive(Debug, Deserialize)]
struct RunQuery {
    run: Option<String>,
}

async fn model(State(state): State<AppState>, Query(query): Query<RunQuery>) -> Result<Json<Value>, ApiError> {
    let (name, checkpoints) = checkpoints_for(&state, query.run.as_deref()).await?;
    Ok(Json(json!({
        "name": name,
        "checkpoint": checkpoints.first(),
        "checkpoints": checkpoints,
        "fixed": state.config.checkpoint.is_some(),
    })))
}

async fn list_runs(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let runs = state.runs.clone();
    let (listed, sweeps) = blocking(move || {
        let listed = runs.list();
        let sweeps = runs.sweeps(&listed);
        (listed, sweeps)
    })
    .await?;
    Ok(Json(json!({ "runs": listed, "sweeps": sweeps })))
}

async fn metrics(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    let dir = run_dir(&state, &name).await?;
    let runs = state.runs.clone();
    let records = blocking(move || runs.records(&dir))
        .await?
        .map_err(|problem| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("run {name:?}: {problem}")))?;
    Ok(Json(json!({ "name": name, "records": records.as_ref() })))
}

/// A JSON body's pixels: `{"pixels": [...]}` (floats in [0, 1]) or
/// `{"bytes": [...]}` (integers 0-255), 784 values flat or as 28 rows of 28.
fn pixels_from_json(body: &[u8]) -> Result<Vec<f32>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the body is not valid JSON: {error}")))?;
    let (key, scale, whole) = if value.get("pixels").is_some() {
        ("pixels", 1.0, false)
    } else if value.get("bytes").is_some() {
        ("bytes", 255.0, true)
    } else {
        return Err(ApiError::bad_request(
            "expected a JSON object with `pixels` (784 floats in [0, 1]) or `bytes` (784 integers 0-255)",
        ));
    };
    let flat: Vec<&Value> = match &value[key] {
        Value::Array(items) if items.iter().all(Value::is_array) => {
            items.iter().flat_map(|row| row.as_array().into_iter().flatten()).collect()
        }
        Value::Array(items) => items.iter().collect(),
        _ => return Err(ApiError::bad_request(format!("`{key}` must be an array"))),
    };
    if flat.len() != PIXELS {
        return Err(ApiError::bad_request(format!("`{key}` has {} values, expected 784 (28x28)", flat.len())));
    }
    flat.iter()
        .enumerate()
        .map(|(index, item)| {
            let number = item.as_f64().filter(|number| number.is_finite());
            let valid = number.filter(|&number| (0.0..=scale).contains(&number) && (!whole || number.fract() == 0.0));
            valid.map(|number| (number / scale) as f32).ok_or_else(|| {
                let expected = if whole { "an integer from 0 to 255" } else { "a number from 0 to 1" };
                ApiError::bad_request(format!("`{key}`[{index}] is {item}, expected {expected}"))
            })
        })
        .collect()
}

/// An uploaded image through the same preprocessing as `trainer predict`,
/// its decoding bounded in pixels and in memory.
fn pixels_from_image(
    body: &[u8],
    layout: preprocess::Layout,
    max_decode_bytes: u64,
) -> Result<(Vec<f32>, bool), ApiError> {
    let name = "the uploaded image";
    let limits =
        preprocess::Limits { max_file_bytes: MAX_BODY_BYTES as u64, max_decode_bytes, ..preprocess::Limits::default() };
    let grey = preprocess::decode_grey(body, name, limits).map_err(|error| {
        let status = match error {
            preprocess::PrepError::TooMuchMemory { .. } | preprocess::PrepError::TooManyPixels { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.to_string())
    })?;
    let options = preprocess::Options { layout, ..preprocess::Options::default() };
    let prepared = preprocess::prepare(grey.view(), &options, name).map_err(|error| {
        let status = if matches!(error, preprocess::PrepError::NoInk { .. }) {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, error.to_string())
    })?;
    Ok((prepared.image.iter().copied().collect(), prepared.inverted))
}

/// What a prediction request sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// 784 values as `application/json`.
    Json,
    /// An image file, as an `image/*` type: never another type, so that a
    /// cross-site form or a CORS-free `text/plain` post is not decoded.
    Image,
}

fn upload_kind(headers: &HeaderMap) -> Result<Upload, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/json" {
        Ok(Upload::Json)
    } else if essence.starts_with("image/") {
        Ok(Upload::Image)
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {content_type:?}: send an image file as image/* (image/png, image/jpeg, ...) \
                 or 784 values as application/json"
            ),
        ))
    }
}

/// The body, read within the upload budget (it reserves the declared
/// length, or the body limit when none is declared) and the body timeout.
/// The permit is held while the body is in memory.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let reserve = declared.map_or(MAX_BODY_BYTES, |length| length as usize).div_ceil(1024).max(1);
    let limits = state.config.limits;
    let permit = state.uploads.clone().try_acquire_many_owned(reserve as u32).map_err(|_| {
        let budget = limits.max_upload_bytes_in_flight;
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("uploads in progress already hold the limit of {budget} bytes; try again"),
        )
    })?;
    let bytes = match tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Err(_) => {
            let seconds = limits.body_timeout.as_secs_f64();
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive whole within the limit of {seconds} s"),
            ));
        }
        Ok(Err(error)) if is_length_limit(&error) => return Err(too_large()),
        Ok(Err(error)) => return Err(ApiError::bad_request(format!("cannot read the body: {error}"))),
        Ok(Ok(bytes)) => bytes,
    };
    Ok((bytes, permit))
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// How uploads are prepared for the checkpoint's data set (from its header,
/// read once per version of the file; a failure is remembered too).
async fn layout_for(state: &AppState, checkpoint: &Path) -> Result<preprocess::Layout, ApiError> {
    let (backend, datasets, path) = (state.backend.clone(), state.datasets.clone(), checkpoint.to_path_buf());
    let server_error = |message: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message);
    let dataset = blocking(move || datasets.get(&path, |path| backend.dataset(path)))
        .await?
        .map_err(|problem| server_error(problem.to_string()))?
        .map_err(server_error)?;
    match datasets::by_name(&dataset) {
        Ok(known) => Ok(known.photo_layout.into()),
        Err(unknown) => Err(server_error(format!("{}: trained on {unknown}", checkpoint.display()))),
    }
}

async fn predict(
    State(state): State<AppState>,
    Query(query): Query<RunQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let kind = upload_kind(&headers)?;
    let (body, _upload) = read_body(&state, &headers, body).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("empty body: send an image file, or JSON with `pixels` or `bytes`"));
    }
    let (model_name, checkpoints) = checkpoints_for(&state, query.run.as_deref()).await?;
    let (pixels, inverted) = match kind {
        Upload::Json => (pixels_from_json(&body)?, None),
        Upload::Image => {
            // An ensemble's members share a data set (the backend refuses
            // any other), so the first member's header decides.
            let layout = layout_for(&state, &checkpoints[0]).await?;
            // Decoding is CPU and memory work: a few at a time, off the async threads.
            let _decoding = state.decodes.acquire().await.map_err(|error| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the decoder queue closed: {error}"))
            })?;
            let max_decode_bytes = state.config.limits.max_decode_bytes;
            let (pixels, inverted) = blocking(move || pixels_from_image(&body, layout, max_decode_bytes)).await??;
            (pixels, Some(inverted))
        }
    };
    let answer = state.batcher.predict(&checkpoints, pixels.clone()).await.map_err(|error| match error {
        BatchError::Busy(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        BatchError::Stopped | BatchError::Model(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
        }
    })?;
    let probabilities = answer.probabilities.first().cloned().unwrap_or_default();
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let predictions: Vec<Value> = ranked
        .iter()
        .map(|&(class, probability)| {
            json!({ "class": class, "name": answer.class_names.get(class), "probability": probability })
        })
        .collect();
    Ok(Json(json!({
        "model": model_name,
        "predictions": predictions,
        "input": pixels,
        "inverted": inverted,
        "batch_images": answer.batch_images,
    })))
}

/// The mistakes of each checkpoint version (or why they could not be
/// found), computed one checkpoint at a time.
#[derive(Debug, Default)]
pub struct Mistakes {
    running: tokio::sync::Mutex<()>,
    cache: StampCache<Result<Arc<Value>, String>>,
}

/// The test images the checkpoint misclassifies, worst (least probability
/// on the true class) first, at most [`MAX_MISTAKES`].
fn find_mistakes(backend: &dyn crate::Backend, checkpoint: &Path) -> Result<Value, String> {
    let mut model = backend.load(&[checkpoint.to_path_buf()])?;
    let test = backend.test_set(model.dataset())?;
    let mut rows = Vec::with_capacity(test.labels.len());
    for chunk in test.pixels.chunks(PIXELS * 1000) {
        rows.extend(model.probabilities(chunk)?);
    }
    let n_classes = model.class_names().len();
    let scores = scoring::Scores::from_probabilities(&rows, &test.labels, n_classes)
        .map_err(|error| format!("scoring the test images: {error}"))?;
    let listed: Vec<Value> = scores
        .mistakes
        .iter()
        .take(MAX_MISTAKES)
        .map(|mistake| {
            let index = mistake.index;
            let pixels: Vec<u8> = test.pixels[index * PIXELS..(index + 1) * PIXELS]
                .iter()
                .map(|value| (value.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            json!({ "index": index, "true_class": mistake.true_class, "predicted_class": mistake.predicted_class,
                    "probabilities": rows[index], "pixels": pixels })
        })
        .collect();
    Ok(json!({
        "n_images": test.labels.len(),
        "n_mistakes": scores.mistakes.len(),
        "class_names": model.class_names(),
        "mistakes": listed,
    }))
}

async fn mistakes(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    let checkpoint = run_checkpoint(&state, &name).await?;
    // One computation at a time per server: the lock is held while it runs.
    let _running = state.mistakes.running.lock().await;
    let (backend, mistakes) = (state.backend.clone(), state.mistakes.clone());
    let found =
        blocking(move || mistakes.cache.get(&checkpoint, |path| find_mistakes(backend.as_ref(), path).map(Arc::new)))
            .await?
            .map_err(|problem| ApiError::new(StatusCode::NOT_FOUND, problem.to_string()))?
            .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error))?;
    Ok(Json(json!({ "name": name, "test": found.as_ref() })))
}
