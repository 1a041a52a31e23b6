//! Who may call: every request passes the Host check (DNS rebinding), the Origin check
//! (cross-site requests) and the API key, in that order, before any handler runs.

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq as _;

use super::{API_KEY_HEADER, ApiError, Shared};

pub(super) async fn guard(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if state.local {
        return Ok(next.run(request).await);
    }
    let headers = request.headers();
    // HTTP/1.1 requires Host; a request without one is as suspect as one with a foreign one.
    let host =
        headers.get(HOST).and_then(|h| h.to_str().ok()).map(|h| with_port(&h.to_ascii_lowercase(), 80));
    let Some(host) = host else {
        return Err(ApiError::Forbidden("the request has no valid Host header".into()));
    };
    if let Some(allowed) = &state.hosts
        && !allowed.contains(&host)
    {
        return Err(ApiError::Forbidden(format!(
            "host {host:?} is not an address this API answers to (use {})",
            allowed.join(", ")
        )));
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().ok().and_then(origin_host);
        if origin.as_deref() != Some(host.as_str()) {
            return Err(ApiError::Forbidden(
                "cross-site requests are refused: the Origin header is not this server".into(),
            ));
        }
    }
    let key = headers.get(API_KEY_HEADER).ok_or(ApiError::NoKey)?;
    // Constant time, so the key cannot be guessed a byte at a time from response times.
    if !bool::from(key.as_bytes().ct_eq(state.api_key.as_bytes())) || state.api_key.is_empty() {
        return Err(ApiError::WrongKey);
    }
    Ok(next.run(request).await)
}

/// `host` with `:default` appended when it has no port (`[::1]` has colons but no port).
fn with_port(host: &str, default: u16) -> String {
    let has_port = match host.rsplit_once(':') {
        Some((before, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !before.is_empty()
                && (!before.starts_with('[') || before.ends_with(']'))
        }
        None => false,
    };
    if has_port { host.to_owned() } else { format!("{host}:{default}") }
}

/// The `host:port` of an Origin (`scheme://host[:port]`), lower case; `None` for `null` and
/// anything else that is not such a URL.
fn origin_host(origin: &str) -> Option<String> {
    let origin = origin.to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some(with_port(rest, default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins_get_their_default_ports() {
        assert_eq!(with_port("localhost:8384", 80), "localhost:8384");
        assert_eq!(with_port("localhost", 80), "localhost:80");
        assert_eq!(with_port("[::1]:8384", 80), "[::1]:8384");
        assert_eq!(with_port("[::1]", 80), "[::1]:80");
        assert_eq!(origin_host("http://127.0.0.1:8384").as_deref(), Some("127.0.0.1:8384"));
        assert_eq!(origin_host("HTTPS://Example.com").as_deref(), Some("example.com:443"));
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("ftp://x"), None);
    }
}
