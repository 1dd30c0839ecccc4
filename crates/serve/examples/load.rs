//! A bounded load test of a running `trainer serve`, over loopback only:
//! CLIENTS concurrent clients each post 28x28 arrays to `/api/predict`, one
//! request after another, for SECONDS seconds; then prints one JSON line
//! with the requests answered, the errors, the throughput and the latency
//! percentiles.
//!
//!     cargo run --release -p serve --example load -- http://127.0.0.1:PORT [CLIENTS] [SECONDS]
//!
//! `scripts/bench_serve.sh` runs it against the server with and without
//! dynamic batching.

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().ok_or("usage: load http://127.0.0.1:PORT [CLIENTS] [SECONDS]")?;
    let clients: usize = args.next().map_or(Ok(100), |text| text.parse())?;
    let seconds: f64 = args.next().map_or(Ok(10.0), |text| text.parse())?;
    let endpoint = loopback_endpoint(&base)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let tasks: Vec<_> =
        (0..clients).map(|index| tokio::spawn(one_client(client.clone(), endpoint.clone(), index, deadline))).collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (mine, my_errors) = task.await?;
        latencies.extend(mine);
        errors += my_errors;
    }
    print_summary(clients, start.elapsed().as_secs_f64(), latencies, errors);
    Ok(())
}

/// `/api/predict` of `base`, which must be a loopback address.
fn loopback_endpoint(base: &str) -> Result<reqwest::Url, Box<dyn std::error::Error>> {
    let url = reqwest::Url::parse(base)?;
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("{base}: the load test only sends to loopback addresses").into());
    }
    Ok(url.join("/api/predict")?)
}

/// One client posting until `deadline`: each answered request's latency, and the failures.
async fn one_client(
    client: reqwest::Client,
    endpoint: reqwest::Url,
    index: usize,
    deadline: Instant,
) -> (Vec<f64>, usize) {
    // A different vertical bar per client: the network's cost does not depend on the content.
    let pixels: Vec<f32> = (0..784).map(|pixel| if (pixel % 28) / 3 == index % 9 { 1.0 } else { 0.0 }).collect();
    let body = serde_json::json!({ "pixels": pixels }).to_string();
    let (mut latencies, mut errors) = (Vec::new(), 0usize);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let response =
            client.post(endpoint.clone()).header("content-type", "application/json").body(body.clone()).send().await;
        let answered = match response {
            Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
            Err(_) => false,
        };
        if answered {
            latencies.push(sent.elapsed().as_secs_f64());
        } else {
            errors += 1;
        }
    }
    (latencies, errors)
}

/// The one JSON line: requests, errors, throughput and latency percentiles.
fn print_summary(clients: usize, elapsed: f64, mut latencies: Vec<f64>, errors: usize) {
    latencies.sort_by(f64::total_cmp);
    let percentile =
        |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "seconds": elapsed,
            "requests": latencies.len(),
            "errors": errors,
            "requests_per_second": latencies.len() as f64 / elapsed,
            "p50_ms": percentile(0.5) * 1e3,
            "p99_ms": percentile(0.99) * 1e3,
        })
    );
}
