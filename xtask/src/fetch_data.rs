//! `cargo xtask fetch-data`: verify the data files against their SHA-256 sums and
//! (re)fetch any that are missing or corrupt, from mirrors tried in order.
//!
//! A fetched file is written to a temporary name in the same folder, hashed as
//! it streams, and renamed over the real name only once its sum matches, so a
//! failed or corrupt download never replaces anything.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use url::{Host, Url};

/// No MNIST-class file comes near this; a server sending more is not serving one.
const MAX_DOWNLOAD_BYTES: u64 = 256 << 20;

/// Arguments of `cargo xtask fetch-data`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which data set to verify and fetch (mnist, fashion-mnist).
    #[arg(long, default_value = "mnist", value_parser = dataset_named)]
    dataset: &'static datasets::Dataset,
    /// Folder holding one sub-folder per data set [default: the repository's data/].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Mirror to fetch from instead of the built-in ones: an https:// URL (http:// only on a
    /// loopback host) or a local folder. Repeat to try several, in order.
    #[arg(long = "mirror", value_name = "URL|DIR")]
    mirrors: Vec<String>,
}

/// `--dataset`: a data set this build knows (`datasets::ALL`).
fn dataset_named(name: &str) -> Result<&'static datasets::Dataset, String> {
    datasets::by_name(name).map_err(|error| error.to_string())
}

/// The most redirects one download follows.
const MAX_REDIRECTS: usize = 5;

/// Where a file can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mirror {
    /// A base URL ending in `/`.
    Url(Url),
    /// A local folder.
    Dir(PathBuf),
}

/// Whether the URL's host is this machine: `localhost` or a loopback address.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

/// Refuses what a mirror or a redirect may not be: a user name or password
/// (sent in clear, or logged), a scheme other than https, or plain http to
/// another host than this machine.
fn check_url(url: &Url, what: &str) -> Result<()> {
    if !url.username().is_empty() || url.password().is_some() {
        bail!("{what} {url}: a user name or password in the URL is refused");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => bail!("{what} {url}: plain http is refused (HTTPS only, except on a loopback host)"),
        other => bail!("{what} {url}: unsupported scheme {other} (expected https://, or a local folder)"),
    }
}

/// Refuses a redirect that lowers security: from https to http, or to plain
/// http on another host than this machine (and whatever `check_url` refuses).
fn check_redirect(from: &Url, to: &Url) -> Result<()> {
    if from.scheme() == "https" && to.scheme() != "https" {
        bail!("redirect from {from} to {to} refused: it leaves HTTPS");
    }
    check_url(to, "redirect to")
}

impl Mirror {
    fn parse(text: &str) -> Result<Self> {
        if !text.contains("://") {
            return Ok(Mirror::Dir(PathBuf::from(text)));
        }
        let mut url = Url::parse(text).with_context(|| format!("mirror {text}: not a valid URL"))?;
        check_url(&url, "mirror")?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        Ok(Mirror::Url(url))
    }

    fn describe(&self, file_name: &str) -> String {
        match self {
            Mirror::Url(base) => base.join(file_name).map_or_else(|_| format!("{base}{file_name}"), String::from),
            Mirror::Dir(dir) => dir.join(file_name).display().to_string(),
        }
    }
}

/// One line of a `SHA256SUMS` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    file_name: String,
    sha256: String,
}

fn parse_sha256sums(text: &str) -> Result<Vec<Expected>> {
    let mut expected = Vec::new();
    for (line_idx, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let (sha256, file_name) = line.split_once(char::is_whitespace).with_context(|| {
            format!("SHA256SUMS line {}: expected `<sha256>  <file>`, found {line:?}", line_idx + 1)
        })?;
        let file_name = file_name.trim().trim_start_matches('*');
        if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            bail!("SHA256SUMS line {}: {sha256:?} is not a SHA-256 in hex", line_idx + 1);
        }
        expected.push(Expected { file_name: file_name.to_owned(), sha256: sha256.to_ascii_lowercase() });
    }
    Ok(expected)
}

/// The SHA-256 of a file, or `None` when it does not exist.
fn sha256_of_file(path: &Path) -> Result<Option<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("{}: cannot open", path.display())),
    };
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(Some(hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Streams `source` into `temp_path`, hashing as it goes; returns the hash.
fn copy_hashing(mut source: impl Read, temp_path: &Path) -> Result<String> {
    let mut file = File::create(temp_path).with_context(|| format!("{}: cannot create", temp_path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut n_total = 0u64;
    loop {
        let n_read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n_read) => n_read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => bail!("transfer failed after {n_total} bytes: {error}"),
        };
        n_total += n_read as u64;
        if n_total > MAX_DOWNLOAD_BYTES {
            bail!("more than {MAX_DOWNLOAD_BYTES} bytes: not a data file");
        }
        hasher.update(&buffer[..n_read]);
        file.write_all(&buffer[..n_read]).with_context(|| format!("{}: cannot write", temp_path.display()))?;
    }
    file.sync_all().with_context(|| format!("{}: cannot flush", temp_path.display()))?;
    Ok(hex(&hasher.finalize()))
}

/// Fetches one file from one mirror into `temp_path`; returns its SHA-256.
fn fetch_from(agent: &ureq::Agent, mirror: &Mirror, file_name: &str, temp_path: &Path) -> Result<String> {
    match mirror {
        Mirror::Dir(dir) => {
            let path = dir.join(file_name);
            let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            copy_hashing(file, temp_path)
        }
        Mirror::Url(base) => {
            let mut url = base.join(file_name).with_context(|| format!("{base}: cannot name {file_name} in it"))?;
            // Redirects are followed here, one by one, so each is checked (the agent follows none).
            for _ in 0..=MAX_REDIRECTS {
                let response = agent.get(url.as_str()).call()?;
                if !response.status().is_redirection() {
                    return copy_hashing(response.into_body().into_reader(), temp_path);
                }
                let location =
                    response.headers().get("location").and_then(|value| value.to_str().ok()).with_context(|| {
                        format!("{url}: a redirect ({}) without a usable Location", response.status())
                    })?;
                let next = url.join(location).with_context(|| format!("{url}: bad redirect Location {location:?}"))?;
                check_redirect(&url, &next)?;
                url = next;
            }
            bail!("more than {MAX_REDIRECTS} redirects")
        }
    }
}

/// Tries each mirror in turn; on the first whose copy hashes right, renames it into place.
fn restore(agent: &ureq::Agent, mirrors: &[Mirror], expected: &Expected, dest: &Path) -> Result<String> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let temp_path = dir.join(temp_name(&expected.file_name, std::process::id()));
    let mut failures = Vec::new();
    for mirror in mirrors {
        let source = mirror.describe(&expected.file_name);
        println!("  fetching {source}");
        let outcome = fetch_from(agent, mirror, &expected.file_name, &temp_path).and_then(|found| {
            if found == expected.sha256 {
                fs::rename(&temp_path, dest).with_context(|| format!("cannot rename into {}", dest.display()))
            } else {
                bail!("SHA-256 mismatch: expected {}, found {found}", expected.sha256)
            }
        });
        match outcome {
            Ok(()) => return Ok(source),
            Err(error) => {
                // The temporary copy is useless: never leave it, never let it replace anything.
                let _ = fs::remove_file(&temp_path);
                println!("  rejected {source}: {error:#}");
                failures.push(format!("{source}: {error:#}"));
            }
        }
    }
    if failures.is_empty() {
        bail!("no mirror to fetch from");
    }
    bail!("every mirror failed:\n    {}", failures.join("\n    "))
}

/// The temporary name a download by process `pid` streams into.
fn temp_name(file_name: &str, pid: u32) -> String {
    format!(".{file_name}.{pid}.part")
}

/// Removes the partial downloads a killed run of this task left in `dir`
/// (`.FILE.PID.part` for one of the data set's own files), and nothing else.
fn remove_stale_downloads(dir: &Path, expected: &[Expected]) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = expected.iter().any(|file| {
            name.strip_prefix(&format!(".{}.", file.file_name))
                .and_then(|rest| rest.strip_suffix(".part"))
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|byte| byte.is_ascii_digit()))
        });
        if ours {
            fs::remove_file(entry.path()).with_context(|| format!("cannot remove {}", entry.path().display()))?;
            println!("removed  {} (a download that did not finish)", entry.path().display());
        }
    }
    Ok(())
}

/// Verifies the data set's files against `SHA256SUMS` and fetches the missing or bad ones.
pub fn run(root: &Path, args: &Args) -> Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(|| root.join("data")).join(args.dataset.name);
    let expected_files = parse_sha256sums(args.dataset.sha256sums)?;
    let mirrors: Vec<Mirror> = if args.mirrors.is_empty() {
        args.dataset.mirrors.iter().map(|text| Mirror::parse(text)).collect::<Result<_>>()?
    } else {
        args.mirrors.iter().map(|text| Mirror::parse(text)).collect::<Result<_>>()?
    };
    fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    remove_stale_downloads(&data_dir, &expected_files)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();

    let mut problems = Vec::new();
    for expected in &expected_files {
        let path = data_dir.join(&expected.file_name);
        let problem = match sha256_of_file(&path)? {
            Some(found) if found == expected.sha256 => {
                println!("ok       {} (sha256 {}...)", path.display(), &found[..16]);
                continue;
            }
            Some(found) => format!("SHA-256 mismatch: expected {}, found {found}", expected.sha256),
            None => "missing".to_owned(),
        };
        println!("BAD      {}: {problem}", path.display());
        match restore(&agent, &mirrors, expected, &path) {
            Ok(source) => println!("restored {} from {source}", path.display()),
            Err(error) => problems.push(format!("{}: {problem}; not restored: {error:#}", path.display())),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} of {} files of {} are missing or corrupt:\n  {}",
            problems.len(),
            expected_files.len(),
            args.dataset.name,
            problems.join("\n  ")
        );
    }
    println!("all {} files of {} verified in {}", expected_files.len(), args.dataset.name, data_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_https_or_loopback_http_or_folders() {
        assert_eq!(
            Mirror::parse("https://example.org/mnist").unwrap(),
            Mirror::Url(Url::parse("https://example.org/mnist/").unwrap())
        );
        for loopback in ["http://127.0.0.1:8000/", "http://localhost/x/", "http://[::1]:9/", "http://127.8.9.10/"] {
            assert!(matches!(Mirror::parse(loopback).unwrap(), Mirror::Url(_)), "{loopback}");
        }
        for (text, expected) in [
            ("http://example.org/mnist/", "HTTPS only"),
            // The host is example.org; `127.0.0.1` is a user name.
            ("http://127.0.0.1@example.org/", "a user name or password in the URL is refused"),
            ("https://user:secret@example.org/", "a user name or password in the URL is refused"),
            ("http://127.0.0.1.example.org/", "HTTPS only"),
            ("http://localhost.example.org/", "HTTPS only"),
            ("ftp://example.org/", "unsupported scheme ftp"),
            ("https://exa mple.org/", "not a valid URL"),
        ] {
            let error = format!("{:#}", Mirror::parse(text).unwrap_err());
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert_eq!(Mirror::parse("/srv/mnist").unwrap(), Mirror::Dir("/srv/mnist".into()));
    }

    #[test]
    fn redirects_never_leave_https_nor_reach_remote_plain_http() {
        let url = |text: &str| Url::parse(text).unwrap();
        check_redirect(&url("https://a.org/x"), &url("https://b.org/y")).unwrap();
        check_redirect(&url("http://127.0.0.1:1/x"), &url("http://localhost:2/y")).unwrap();
        let error = check_redirect(&url("https://a.org/x"), &url("http://127.0.0.1/y")).unwrap_err().to_string();
        assert!(error.contains("it leaves HTTPS"), "{error}");
        let error = check_redirect(&url("http://127.0.0.1/x"), &url("http://example.org/y")).unwrap_err().to_string();
        assert!(error.contains("plain http is refused"), "{error}");
        let error = check_redirect(&url("https://a.org/x"), &url("https://u:p@b.org/")).unwrap_err().to_string();
        assert!(error.contains("user name or password"), "{error}");
    }

    #[test]
    fn stale_downloads_of_the_data_sets_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let expected = parse_sha256sums(datasets::MNIST.sha256sums).unwrap();
        let ours = [temp_name("train-images-idx3-ubyte.gz", 4242), temp_name("t10k-labels-idx1-ubyte.gz", 7)];
        let theirs = [".notes.part", "train-images-idx3-ubyte.gz.part", ".train-images-idx3-ubyte.gz.x1.part", "keep"];
        for name in ours.iter().map(String::as_str).chain(theirs) {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_stale_downloads(dir.path(), &expected).unwrap();
        for name in &ours {
            assert!(!dir.path().join(name).exists(), "{name} was left");
        }
        for name in theirs {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
    }

    #[test]
    fn committed_sums_parse_and_name_the_four_files() {
        for dataset in datasets::ALL {
            let expected = parse_sha256sums(dataset.sha256sums).unwrap();
            let mut names: Vec<_> = expected.iter().map(|entry| entry.file_name.as_str()).collect();
            names.sort_unstable();
            assert_eq!(
                names,
                [
                    "t10k-images-idx3-ubyte.gz",
                    "t10k-labels-idx1-ubyte.gz",
                    "train-images-idx3-ubyte.gz",
                    "train-labels-idx1-ubyte.gz"
                ]
            );
        }
        assert!(parse_sha256sums("abc  file\n").unwrap_err().to_string().contains("not a SHA-256"));
    }
}
