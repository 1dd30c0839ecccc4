//! `trainer serve` over real sockets: it says where it listens (loopback by
//! default), survives clients that disconnect mid-upload, and refuses a
//! checkpoint that is not one before it starts.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn start(runs: &Path) -> (common::KillOnDrop, String, String) {
    let (server, line) = common::start_serve(runs);
    let address = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("http://"))
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (server, address, line)
}

/// A plain HTTP/1.1 exchange; returns the status line and the body.
fn request(address: &str, head: &str, body: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn clients_that_go_away_mid_upload_do_not_hurt_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs/quick");
    std::fs::create_dir_all(&runs).unwrap();
    let fixture = common::trained_checkpoint();
    for name in ["best.safetensors", "metrics.jsonl", "config.json"] {
        std::fs::copy(fixture.parent().unwrap().join(name), runs.join(name)).unwrap();
    }
    let (_server, address, line) = start(runs.parent().unwrap());
    assert!(address.starts_with("127.0.0.1:") && line.contains("this machine only"), "{line}");

    // Ten clients announce a 4 MB upload, send 1 KB of it and disconnect.
    for _ in 0..10 {
        let mut stream = TcpStream::connect(&address).unwrap();
        let head =
            "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 4000000\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&[0u8; 1024]).unwrap();
        drop(stream);
    }
    // The server still answers, predictions included.
    let (status, body) = request(&address, "GET /api/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"");
    assert!(status.contains("200"), "{status}: {body}");
    assert!(body.contains("\"quick\""), "{body}");
    let pixels: Vec<f32> = (0..784).map(|pixel| if pixel % 28 == 14 { 1.0 } else { 0.0 }).collect();
    let json = serde_json::json!({ "pixels": pixels }).to_string();
    let head = format!(
        "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
