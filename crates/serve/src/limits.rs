//! Every bound the server puts on a client's time, bytes and work, in one
//! value, so that the documentation (`docs/SERVE.md`, "Limits") and the
//! tests name the same numbers.

use std::time::Duration;

/// The bounds on what one client, and all of them together, can make the
/// server hold or do. Past each one a client gets a JSON error (or, for a
/// connection that never sends a complete request head, a closed socket).
///
/// ```
/// let limits = serve::Limits::default();
/// assert!(limits.max_decode_bytes >= 64 << 20);
/// assert!(limits.max_connections >= 100, "the load benchmark's 100 clients fit");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection must send a complete request head (request line and
    /// headers) within this time of the server starting to wait for one;
    /// else it is closed. This also closes idle keep-alive connections.
    pub header_timeout: Duration,
    /// A request body must arrive whole within this time (408 past it).
    pub body_timeout: Duration,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of request bodies held at once across all uploads (each
    /// upload reserves its `Content-Length`, or the body limit when it does
    /// not say); an upload that would pass it gets 503.
    pub max_upload_bytes_in_flight: usize,
    /// Images decoded at once; more wait their turn.
    pub max_concurrent_decodes: usize,
    /// Memory one image's decoding may take (the decoder's buffer and the
    /// greyscale copy); a bigger image gets 413 before it is decoded.
    pub max_decode_bytes: u64,
    /// The largest `metrics.jsonl` read (a run of thousands of epochs is a
    /// few MB); a bigger one is reported, not read.
    pub max_records_bytes: u64,
    /// The largest `config.json` read.
    pub max_config_bytes: u64,
    /// The longest request target (path and query) accepted (414 past it).
    pub max_uri_bytes: usize,
    /// Runs listed at most (directly under `--runs` and in its sweeps);
    /// the rest are not shown.
    pub max_listed_runs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_upload_bytes_in_flight: 64 << 20,
            max_concurrent_decodes: 2,
            max_decode_bytes: preprocess::DEFAULT_MAX_DECODE_BYTES,
            max_records_bytes: 16 << 20,
            max_config_bytes: 1 << 20,
            max_uri_bytes: 8 << 10,
            max_listed_runs: 2000,
        }
    }
}
