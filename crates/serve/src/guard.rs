//! What every request passes through before and after its handler: the
//! checks that keep other web pages out (the `Host` a DNS-rebinding page
//! would send, an `Origin` of another site), the request-target length,
//! the security headers of every answer (a Content-Security-Policy that
//! forbids inline script among them), and errors made JSON whatever
//! produced them (axum's own 405 and extractor rejections included).

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::api::ApiError;

/// The policy of the page: its own script, style and API only; no inline
/// script, no plugins, no framing, no form posts elsewhere. Canvas pixels
/// become images through `data:` and `blob:` URLs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The first checks, the handler, then the answer's headers and JSON errors.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let checked = check_target(&request, state.config.limits.max_uri_bytes)
        .and_then(|()| check_host(request.headers(), state.config.address))
        .and_then(|()| check_origin(request.headers()));
    let response = match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    let mut response = json_error(response, &method, &path).await;
    add_security_headers(response.headers_mut());
    response
}

fn check_target(request: &Request, max_bytes: usize) -> Result<(), ApiError> {
    let length = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if length > max_bytes {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request target is {length} bytes, more than the limit of {max_bytes}"),
        ));
    }
    Ok(())
}

/// Splits a `Host` value into its name and port (`[::1]:8080`, `localhost`).
fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, tail)) => (name, tail.strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

/// Whether `host` names this server when it listens on loopback: a loopback
/// name or address, on the bound port (or without one when that is 80).
///
/// ```
/// use serve::guard::loopback_host_allowed;
/// let bound: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
/// assert!(loopback_host_allowed("localhost:8080", bound));
/// assert!(loopback_host_allowed("[::1]:8080", bound));
/// assert!(!loopback_host_allowed("attacker.example:8080", bound), "a DNS-rebinding page's Host");
/// assert!(!loopback_host_allowed("127.0.0.1:9090", bound));
/// ```
pub fn loopback_host_allowed(host: &str, bound: SocketAddr) -> bool {
    let (name, port) = split_host(host);
    let port_matches = match port {
        Some(port) => port.parse::<u16>() == Ok(bound.port()),
        None => bound.port() == 80,
    };
    let name_is_loopback = name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback());
    port_matches && name_is_loopback
}

fn check_host(headers: &HeaderMap, bound: SocketAddr) -> Result<(), ApiError> {
    let Some(host) = headers.get(header::HOST) else {
        return Err(ApiError::bad_request("the request has no Host header (HTTP/1.1 requires one)"));
    };
    let host = host.to_str().unwrap_or_default();
    // Bound to every interface or a public one, any name may reach it: the user asked for that.
    if bound.ip().is_loopback() && !loopback_host_allowed(host, bound) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {host:?} is not this server: bound to loopback, it answers only localhost, \
                 127.0.0.1 or [::1] on port {}",
                bound.port()
            ),
        ));
    }
    Ok(())
}

/// A browser names the page that sent a request in `Origin`; a request
/// from any page but this server's own is refused (a cross-site form or
/// `fetch` posting to the API). Clients that are not browsers send none.
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or_default();
    let same = origin.strip_prefix("http://").is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host));
    if !same {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("requests from another site are refused: Origin {origin:?} is not http://{host}"),
        ));
    }
    Ok(())
}

fn add_security_headers(headers: &mut HeaderMap) {
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
        (header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// An error answer that is not JSON (axum's 405, an extractor's text
/// rejection) becomes `{"error": "..."}` with the same status.
async fn json_error(response: Response, method: &Method, path: &str) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (_, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let text = text.unwrap_or_default();
    let allowed = crate::api::allowed_methods(path);
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        format!("{method} is not allowed on {path}; allowed: {allowed}")
    } else if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        format!("{path}: {}", text.trim())
    };
    let mut answer = ApiError::new(status, message).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum adds `Allow` only outside every layer, so this one says it.
        answer.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    answer
}

/// The answer to a connection over `Limits::max_connections`, written
/// straight to the socket before it is closed.
pub fn busy_answer(max_connections: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!("the server has {max_connections} connections open, its limit; try again")
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body.into_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_split_and_matched_on_name_and_port() {
        assert_eq!(split_host("[::1]:8080"), ("::1", Some("8080")));
        assert_eq!(split_host("localhost"), ("localhost", None));
        assert_eq!(split_host("127.0.0.1:80"), ("127.0.0.1", Some("80")));
        let bound: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert!(loopback_host_allowed("localhost", bound));
        assert!(loopback_host_allowed("127.0.0.1:80", bound));
        assert!(!loopback_host_allowed("localhost.attacker.example", bound));
        assert!(!loopback_host_allowed("127.0.0.1.nip.io", bound));
        assert!(!loopback_host_allowed("", bound));
    }
}
