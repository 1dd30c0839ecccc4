//! The routes: the page, its assets, and the JSON API (`docs/SERVE.md`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::batcher::BatchError;
use crate::runs;
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
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The routes of the app.
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
        .with_state(state)
}

/// The run directory called `name`, or 404.
fn run_dir(state: &AppState, name: &str) -> Result<PathBuf, ApiError> {
    runs::resolve(&state.config.runs_dir, &state.config.layout, name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run called {name:?} under --runs")))
}

/// The checkpoint a request uses: its run's best, or the server's drawing model.
fn checkpoint_for(state: &AppState, run: Option<&str>) -> Result<(String, PathBuf), ApiError> {
    if let Some(name) = run {
        let file = state.config.layout.best_checkpoint;
        let best = run_dir(state, name)?.join(file);
        if !best.is_file() {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("run {name:?} has no {file} yet")));
        }
        return Ok((name.to_owned(), best));
    }
    if let Some(checkpoint) = &state.config.checkpoint {
        return Ok((checkpoint.display().to_string(), checkpoint.clone()));
    }
    runs::default_checkpoint(&state.config.runs_dir, &state.config.layout).ok_or_else(|| {
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
    let (name, checkpoint) = checkpoint_for(&state, query.run.as_deref())?;
    Ok(Json(json!({ "name": name, "checkpoint": checkpoint, "fixed": state.config.checkpoint.is_some() })))
}

async fn list_runs(State(state): State<AppState>) -> Json<Value> {
    let (dir, layout) = (state.config.runs_dir.clone(), state.config.layout);
    let runs = tokio::task::spawn_blocking(move || runs::list(&dir, &layout)).await.unwrap_or_default();
    Json(json!({ "runs": runs }))
}

async fn metrics(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    let dir = run_dir(&state, &name)?;
    let layout = state.config.layout;
    let records = tokio::task::spawn_blocking(move || runs::read_records(&dir, &layout))
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    Ok(Json(json!({ "name": name, "records": records })))
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

/// An uploaded image through the same preprocessing as `trainer predict`.
fn pixels_from_image(body: &[u8], layout: preprocess::Layout) -> Result<(Vec<f32>, bool), ApiError> {
    let name = "the uploaded image";
    let limits = preprocess::Limits { max_file_bytes: MAX_BODY_BYTES as u64, ..preprocess::Limits::default() };
    let grey = preprocess::decode_grey(body, name, limits).map_err(|error| ApiError::bad_request(error.to_string()))?;
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

async fn predict(
    State(state): State<AppState>,
    Query(query): Query<RunQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the body is larger than the limit of {MAX_BODY_BYTES} bytes")
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request("empty body: send an image file, or JSON with `pixels` or `bytes`"));
    }
    let (model_name, checkpoint) = checkpoint_for(&state, query.run.as_deref())?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let (pixels, inverted) = if is_json {
        (pixels_from_json(&body)?, None)
    } else {
        // Decoding and preprocessing are CPU work: off the async threads.
        let backend = state.backend.clone();
        let dataset_checkpoint = checkpoint.clone();
        tokio::task::spawn_blocking(move || {
            let layout = match backend.dataset(&dataset_checkpoint).as_deref() {
                Ok("fashion-mnist") => preprocess::Layout::FashionMnist,
                _ => preprocess::Layout::Mnist,
            };
            pixels_from_image(&body, layout).map(|(pixels, inverted)| (pixels, Some(inverted)))
        })
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))??
    };
    let answer = state.batcher.predict(&checkpoint, pixels.clone()).await.map_err(|error| match error {
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

/// The mistakes of each checkpoint, by file and modification time.
pub type MistakesCache = HashMap<(PathBuf, Option<SystemTime>), Arc<Value>>;

/// The test images the checkpoint misclassifies, worst (least probability
/// on the true class) first, at most [`MAX_MISTAKES`].
fn find_mistakes(backend: &dyn crate::Backend, checkpoint: &Path) -> Result<Value, String> {
    let mut model = backend.load(checkpoint)?;
    let test = backend.test_set(model.dataset())?;
    let mut mistakes = Vec::new();
    for (chunk_index, chunk) in test.pixels.chunks(PIXELS * 1000).enumerate() {
        let rows = model.probabilities(chunk)?;
        for (offset, row) in rows.iter().enumerate() {
            let index = chunk_index * 1000 + offset;
            let label = usize::from(test.labels[index]);
            let predicted = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
            if predicted != label {
                mistakes.push((row[label], index, label, predicted, row.clone()));
            }
        }
    }
    mistakes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_mistakes = mistakes.len();
    let listed: Vec<Value> = mistakes
        .into_iter()
        .take(MAX_MISTAKES)
        .map(|(_, index, label, predicted, probabilities)| {
            let pixels: Vec<u8> = test.pixels[index * PIXELS..(index + 1) * PIXELS]
                .iter()
                .map(|value| (value.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            json!({ "index": index, "true_class": label, "predicted_class": predicted, "probabilities": probabilities, "pixels": pixels })
        })
        .collect();
    Ok(json!({
        "n_images": test.labels.len(),
        "n_mistakes": n_mistakes,
        "class_names": model.class_names(),
        "mistakes": listed,
    }))
}

async fn mistakes(State(state): State<AppState>, UrlPath(name): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    let (_, checkpoint) = checkpoint_for(&state, Some(&name))?;
    let key = (checkpoint.clone(), std::fs::metadata(&checkpoint).and_then(|metadata| metadata.modified()).ok());
    // One computation at a time per server: the lock is held while it runs.
    let mut cache = state.mistakes.lock().await;
    if let Some(found) = cache.get(&key) {
        return Ok(Json(json!({ "name": name, "test": found.as_ref() })));
    }
    let backend = state.backend.clone();
    let found = tokio::task::spawn_blocking(move || find_mistakes(backend.as_ref(), &checkpoint))
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error))?;
    let found = Arc::new(found);
    cache.retain(|(path, _), _| path != &key.0);
    cache.insert(key, found.clone());
    Ok(Json(json!({ "name": name, "test": found.as_ref() })))
}
