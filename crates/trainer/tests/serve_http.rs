//! `trainer serve` over real sockets: it says where it listens (loopback by
//! default), survives clients that disconnect mid-upload, cuts off idle,
//! slow and surplus connections, keeps its memory bounded under concurrent
//! decompression bombs, and refuses a checkpoint that is not one before it
//! starts.

mod common;

use common::request;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn start(runs: &Path) -> (common::KillOnDrop, String, String) {
    start_with(runs, &[])
}

fn start_with(runs: &Path, extra: &[&str]) -> (common::KillOnDrop, String, String) {
    let (server, line) = common::start_serve_with(runs, extra);
    let address = common::served_address(&line);
    (server, address, line)
}

/// A runs folder with a copy of the trained fixture's run, `quick`.
fn runs_with_a_trained_run(dir: &Path) -> std::path::PathBuf {
    let runs = dir.join("runs/quick");
    std::fs::create_dir_all(&runs).unwrap();
    let fixture = common::trained_checkpoint();
    for name in ["best.safetensors", "metrics.jsonl", "config.json"] {
        std::fs::copy(fixture.parent().unwrap().join(name), runs.join(name)).unwrap();
    }
    dir.join("runs")
}

/// A GET that closes the connection after the answer.
fn get_head(address: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
}

/// Reads until the server closes the connection (or resets it), within
/// `limit`; returns what arrived and how long it took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
        assert!(started.elapsed() < limit, "the connection stayed open {limit:?}");
    }
    assert!(started.elapsed() < limit, "the connection stayed open {limit:?}");
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

#[test]
fn idle_slow_and_surplus_connections_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let flags = ["--header-timeout-secs", "1", "--body-timeout-secs", "2", "--max-connections", "8"];
    let (_server, address, _) = start_with(&runs, &flags);

    // Eight connections that send nothing fill the cap: a ninth is answered 503 and closed.
    let mut idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&address).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = TcpStream::connect(&address).unwrap();
    let (answer, _) = read_until_closed(&mut ninth, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("{\"error\":\"the server has 8 connections open, its limit; try again\"}"), "{answer}");
    // The idle ones are closed by the header timeout, not held forever.
    for stream in &mut idle {
        let (_, waited) = read_until_closed(stream, Duration::from_secs(5));
        assert!(waited < Duration::from_secs(4), "an idle connection lived {waited:?}");
    }

    // A head sent one byte every 200 ms (a request line and Host take 8 s) is cut off.
    let mut slow = TcpStream::connect(&address).unwrap();
    let writer = {
        let mut stream = slow.try_clone().unwrap();
        let head = get_head(&address, "/api/runs");
        std::thread::spawn(move || {
            for byte in head.bytes() {
                if stream.write_all(&[byte]).is_err() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            true
        })
    };
    let (answer, waited) = read_until_closed(&mut slow, Duration::from_secs(6));
    assert!(!answer.contains("200 OK"), "the slow head was served: {answer}");
    assert!(waited < Duration::from_secs(4), "a slow head held the connection {waited:?}");
    drop(slow);
    let _ = writer.join();

    // An upload that stalls after 10 of 1,000 bytes gets 408 at the body timeout.
    let mut stalled = TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST /api/predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
    );
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(&[0u8; 10]).unwrap();
    let (answer, waited) = read_until_closed(&mut stalled, Duration::from_secs(8));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive whole within the limit of 2 s"), "{answer}");
    assert!(waited >= Duration::from_millis(1500), "answered before the timeout: {waited:?}");

    // With every cut-off connection gone, the server answers as before.
    let (status, body) = request(&address, &get_head(&address, "/api/runs"), b"");
    assert!(status.contains("200"), "{status}: {body}");
}

/// A PNG of `side` x `side` black pixels, written row by row: tens of KB
/// that claim hundreds of MB once decoded.
fn bomb(side: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(color);
        encoder.set_depth(depth);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header().unwrap();
        let mut stream = writer.stream_writer().unwrap();
        let row = vec![0u8; side as usize * color.samples() * (depth as usize).div_ceil(8)];
        for _ in 0..side {
            stream.write_all(&row).unwrap();
        }
        stream.finish().unwrap();
    }
    out
}

/// The server's peak resident memory so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn decompression_bombs_posted_at_once_leave_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs_with_a_trained_run(dir.path());
    let (server, address, _) = start(&runs);
    let limit = preprocess::DEFAULT_MAX_DECODE_BYTES;
    // Over the limit: 62 megapixels of grey in about 80 KB, and 16-bit RGBA.
    let refused = [
        bomb(7900, png::ColorType::Grayscale, png::BitDepth::Eight),
        bomb(6000, png::ColorType::Rgba, png::BitDepth::Sixteen),
    ];
    // Just under it (30 megapixels, 514 MB to decode and prepare): decoded, and blank.
    let decoded: Vec<Vec<u8>> = (0..4).map(|_| bomb(5500, png::ColorType::Grayscale, png::BitDepth::Eight)).collect();
    assert!(preprocess::memory_needed(5500 * 5500, 1, false) < limit);
    // Warm up: the network loads, so what follows measures the uploads alone.
    let (status, body) = request(&address, &get_head(&address, "/api/model"), b"");
    assert!(status.contains("200"), "{status}: {body}");
    let before = peak_rss(server.0.id());

    let posts: Vec<_> = refused
        .iter()
        .map(|png| (png.clone(), "413"))
        .chain(decoded.iter().map(|png| (png.clone(), "422")))
        .map(|(png, expected)| {
            let address = address.clone();
            std::thread::spawn(move || {
                let head = format!(
                    "POST /api/predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    png.len()
                );
                let (status, body) = request(&address, &head, &png);
                (expected, status, body)
            })
        })
        .collect();
    for post in posts {
        let (expected, status, body) = post.join().unwrap();
        assert!(status.contains(expected), "expected {expected}: {status}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        if expected == "413" {
            let message = error["error"].as_str().unwrap();
            assert!(message.contains(&format!("more than the limit of {limit} bytes")), "{message}");
        }
    }
    // Two decodes at a time, each within the limit: the peak grows by at most
    // two limits and some slack; four at once would take 2 GB.
    let growth = peak_rss(server.0.id()).saturating_sub(before);
    eprintln!("peak growth under the bombs: {growth} bytes");
    assert!(growth < 2 * limit + (256 << 20), "the peak grew {growth} bytes (limit {limit} per decode)");
}

#[test]
fn clients_that_go_away_mid_upload_do_not_hurt_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let runs = runs_with_a_trained_run(dir.path()).join("quick");
    let (_server, address, line) = start(runs.parent().unwrap());
    assert!(address.starts_with("127.0.0.1:") && line.contains("this machine only"), "{line}");

    // Ten clients announce a 4 MB upload, send 1 KB of it and disconnect.
    for _ in 0..10 {
        let mut stream = TcpStream::connect(&address).unwrap();
        let head = format!(
            "POST /api/predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: image/png\r\nContent-Length: 4000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&[0u8; 1024]).unwrap();
        drop(stream);
    }
    // The server still answers, predictions included.
    let (status, body) = request(&address, &get_head(&address, "/api/runs"), b"");
    assert!(status.contains("200"), "{status}: {body}");
    assert!(body.contains("\"quick\""), "{body}");
    let pixels: Vec<f32> = (0..784).map(|pixel| if pixel % 28 == 14 { 1.0 } else { 0.0 }).collect();
    let json = serde_json::json!({ "pixels": pixels }).to_string();
    let head = format!(
        "POST /api/predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        json.len()
    );
    let (status, body) = request(&address, &head, json.as_bytes());
    assert!(status.contains("200"), "{status}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["predictions"][0]["class"], 1, "a vertical bar is a 1: {answer}");
}

#[test]
fn a_bad_checkpoint_or_address_stops_it_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.safetensors");
    std::fs::write(&bad, b"notes").unwrap();
    let output = common::run(&["serve", "--checkpoint", &bad.display().to_string(), "--addr", "127.0.0.1:0"]);
    assert!(!output.status.success());
    assert!(common::text(&output).contains("notes.safetensors: not a safetensors file"), "{}", common::text(&output));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = common::run(&["serve", "--runs", &dir.path().display().to_string(), "--addr", &address]);
    assert!(!output.status.success());
    assert!(common::text(&output).contains(&format!("cannot listen on --addr {address}")), "{}", common::text(&output));
}
