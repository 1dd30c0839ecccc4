//! `cargo xtask fetch-data` end to end: against the committed files, a local
//! folder mirror, and a real HTTP server on 127.0.0.1 that this test starts.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

fn committed_mnist() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// A `data/` folder with a copy of the committed MNIST files.
fn copy_of_data() -> tempfile::TempDir {
    let data_dir = tempfile::tempdir().unwrap();
    fs::create_dir(data_dir.path().join("mnist")).unwrap();
    for name in FILE_NAMES {
        fs::copy(committed_mnist().join(name), data_dir.path().join("mnist").join(name)).unwrap();
    }
    data_dir
}

fn fetch_data(data_dir: &Path, mirrors: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("fetch-data").arg("--data-dir").arg(data_dir);
    for mirror in mirrors {
        command.arg("--mirror").arg(mirror);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A port nothing listens on: any attempt to use it fails at once.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".part"))
        .collect()
}

#[test]
fn committed_files_verify_without_any_network() {
    let data_dir = copy_of_data();
    let output = fetch_data(data_dir.path(), &[&closed_port_url()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("all 4 files of mnist verified"), "{}", text(&output));
    assert!(!text(&output).contains("fetching"), "{}", text(&output));
}

#[test]
fn a_changed_byte_is_named_with_both_sums_and_restored_from_a_folder_mirror() {
    let data_dir = copy_of_data();
    let path = data_dir.path().join("mnist/t10k-labels-idx1-ubyte.gz");
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    // With no reachable mirror: a failure naming the file and both checksums; the file is left alone.
    let output = fetch_data(data_dir.path(), &[&closed_port_url()]);
    assert!(!output.status.success(), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("t10k-labels-idx1-ubyte.gz: SHA-256 mismatch"), "{message}");
    assert!(message.contains("expected f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"), "{message}");
    let found = message.split("found ").nth(1).unwrap().get(..64).unwrap().to_owned();
    assert!(found.bytes().all(|byte| byte.is_ascii_hexdigit()), "{message}");
    assert_eq!(fs::read(&path).unwrap(), bytes);

    // With the committed folder as mirror: restored.
    let mirror = committed_mnist().display().to_string();
    let output = fetch_data(data_dir.path(), &[&mirror]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("restored"), "{}", text(&output));
    assert_eq!(fs::read(&path).unwrap(), fs::read(committed_mnist().join("t10k-labels-idx1-ubyte.gz")).unwrap());
    assert!(leftovers(&data_dir.path().join("mnist")).is_empty());
}

/// How the test server answers `/<mode>/<file>`.
fn serve(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (mode, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Ok(mut body) = fs::read(committed_mnist().join(name)) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let header = |length: usize| format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
    match mode {
        "good" => {
            let _ = stream.write_all(header(body.len()).as_bytes());
            let _ = stream.write_all(&body);
        }
        "corrupt" => {
            let middle = body.len() / 2;
            body[middle] ^= 0xff;
            let _ = stream.write_all(header(body.len()).as_bytes());
            let _ = stream.write_all(&body);
        }
        "redirect-good" => {
            // A relative Location on this same loopback server: followed.
            let response = format!(
                "HTTP/1.1 302 Found\r\nLocation: /good/{name}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes());
        }
        "redirect-remote" => {
            // To plain http on another host: refused, never requested.
            let response = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://example.invalid/{name}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(response.as_bytes());
        }
        "truncated" => {
            // Promise the whole file, send half, hang up.
            let _ = stream.write_all(header(body.len()).as_bytes());
            let _ = stream.write_all(&body[..body.len() / 2]);
        }
        _ => {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    }
}

/// Starts the server on 127.0.0.1; returns its base URL.
fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    base
}

#[test]
fn http_mirrors_are_tried_in_order_past_404_corrupt_and_truncated_transfers() {
    let base = start_server();
    let data_dir = copy_of_data();
    let mnist_dir = data_dir.path().join("mnist");
    fs::remove_file(mnist_dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    fs::remove_file(mnist_dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();

    let mirrors =
        [format!("{base}missing/"), format!("{base}corrupt/"), format!("{base}truncated/"), format!("{base}good")];
    let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
    let output = fetch_data(data_dir.path(), &mirrors);
    let message = text(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("SHA-256 mismatch"), "{message}");
    assert!(message.contains("transfer failed after"), "{message}");
    assert_eq!(message.matches("restored").count(), 2, "{message}");
    for name in ["train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        assert_eq!(fs::read(mnist_dir.join(name)).unwrap(), fs::read(committed_mnist().join(name)).unwrap());
    }
    assert!(leftovers(&mnist_dir).is_empty(), "{:?}", leftovers(&mnist_dir));
}

#[test]
fn when_every_mirror_fails_nothing_is_written_and_the_run_fails() {
    let base = start_server();
    let data_dir = copy_of_data();
    let mnist_dir = data_dir.path().join("mnist");
    fs::remove_file(mnist_dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();

    let mirrors = [format!("{base}corrupt/"), format!("{base}truncated/")];
    let output = fetch_data(data_dir.path(), &[&mirrors[0], &mirrors[1]]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(message.contains("1 of 4 files of mnist are missing or corrupt"), "{message}");
    assert!(message.contains("t10k-labels-idx1-ubyte.gz: missing; not restored: every mirror failed"), "{message}");
    assert!(!mnist_dir.join("t10k-labels-idx1-ubyte.gz").exists());
    assert!(leftovers(&mnist_dir).is_empty());
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let data_dir = copy_of_data();
    let output = fetch_data(data_dir.path(), &["http://example.org/mnist/"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("HTTPS only"), "{}", text(&output));
}

#[test]
fn redirects_are_checked_one_by_one_and_stale_partial_downloads_removed() {
    let base = start_server();
    let data_dir = copy_of_data();
    let mnist_dir = data_dir.path().join("mnist");
    fs::remove_file(mnist_dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    // What a download killed by a previous run left behind.
    let stale = mnist_dir.join(".t10k-labels-idx1-ubyte.gz.999999.part");
    fs::write(&stale, b"half a file").unwrap();

    let mirrors = [format!("{base}redirect-remote/"), format!("{base}redirect-good/")];
    let output = fetch_data(data_dir.path(), &[&mirrors[0], &mirrors[1]]);
    let message = text(&output);
    assert!(output.status.success(), "{message}");
    assert!(
        message.contains("redirect to http://example.invalid/t10k-labels-idx1-ubyte.gz: plain http is refused"),
        "{message}"
    );
    assert!(message.contains("restored"), "{message}");
    assert!(message.contains("a download that did not finish"), "{message}");
    assert!(!stale.exists());
    let name = "t10k-labels-idx1-ubyte.gz";
    assert_eq!(fs::read(mnist_dir.join(name)).unwrap(), fs::read(committed_mnist().join(name)).unwrap());
    assert!(leftovers(&mnist_dir).is_empty(), "{:?}", leftovers(&mnist_dir));
}

#[test]
fn a_user_name_in_a_mirror_url_is_refused() {
    let data_dir = copy_of_data();
    let output = fetch_data(data_dir.path(), &["http://127.0.0.1@example.org/mnist/"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("a user name or password in the URL is refused"), "{}", text(&output));
}
