//! Who may call: every request passes the Host check (DNS rebinding) and the Origin check
//! (cross-site requests), in that order, before any handler runs; a call under `/api/` also
//! needs the API key or a signed-in browser session. The web UI's files (everything outside
//! `/api/`) and `/api/session` (which is how one signs in) need neither.
//! The `/api/session` routes live here too: signing in with the key or the GUI password.

use std::time::Instant;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;

use super::session;
use super::{API_KEY_HEADER, ApiError, Shared};

/// The one path under `/api/` that answers without the key: signing in.
const SESSION_PATH: &str = "/api/session";

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
    let path = request.uri().path();
    let api = path == "/api" || path.starts_with("/api/");
    if api && path != SESSION_PATH {
        authorised(&state, headers)?;
    }
    Ok(next.run(request).await)
}

/// Whether the request carries the API key or an open session's cookie. A key that is sent
/// must be right, whatever cookie comes with it.
fn authorised(state: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(key) = headers.get(API_KEY_HEADER) {
        return if right_key(state, key.as_bytes()) { Ok(()) } else { Err(ApiError::WrongKey) };
    }
    match session_token(headers) {
        Some(token) if state.sessions.check(&token, Instant::now()) => Ok(()),
        Some(_) => Err(ApiError::SessionEnded),
        None => Err(ApiError::NoKey),
    }
}

/// Constant time, so the key cannot be guessed a byte at a time from response times.
fn right_key(state: &Shared, key: &[u8]) -> bool {
    !state.api_key.is_empty() && bool::from(key.ct_eq(state.api_key.as_bytes()))
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    session::token_in(headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()))
}

#[derive(Serialize, ToSchema)]
pub(super) struct SessionInfo {
    /// Whether this request is signed in (by its session cookie or the API key).
    signed_in: bool,
    /// Whether a GUI password is set, so signing in with user and password can work.
    password_set: bool,
    /// The GUI user name, if one is set.
    user: Option<String>,
}

/// Whether this browser is signed in, and how it could sign in. Needs no key.
#[utoipa::path(get, path = "/api/session", responses((status = 200, body = SessionInfo)))]
pub(super) async fn session_info(State(state): State<Shared>, headers: HeaderMap) -> Json<SessionInfo> {
    let gui = state.service.engine().config().gui.clone();
    Json(SessionInfo {
        // The control socket and the desktop app in-process are trusted: nobody signs in there.
        signed_in: state.local || authorised(&state, &headers).is_ok(),
        password_set: gui.password_hash.is_some(),
        user: gui.user,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignIn {
    /// The API key (what `peerfold gui url` puts in the link it prints).
    api_key: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

/// Signs a browser in with the API key or the GUI user and password: 204 and a session cookie
/// (`peerfold_session`, HttpOnly, SameSite=Strict), or 401. Needs no key. Password tries meet
/// the brake (see `session.rs`): 429 with `Retry-After` when it is on.
#[utoipa::path(post, path = "/api/session", request_body = SignIn,
    responses((status = 204, description = "signed in; the cookie is set"), (status = 400),
        (status = 401, description = "wrong key, user or password"), (status = 429, description = "too many failed or simultaneous password tries; Retry-After says when to try again")))]
pub(super) async fn sign_in(
    State(state): State<Shared>,
    sign_in: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let sign_in = super::handlers::body(sign_in)?;
    let now = Instant::now();
    match sign_in {
        // The key needs no brake: it cannot be guessed (and its header meets none), and a
        // flood of wrong passwords must not keep the owner's `peerfold gui url` link out.
        SignIn { api_key: Some(key), user: None, password: None } => {
            if !right_key(&state, key.as_bytes()) {
                return Err(ApiError::WrongKey);
            }
        }
        SignIn { api_key: None, user, password: Some(password) } => {
            let gui = state.service.engine().config().gui.clone();
            let Some(hash) = gui.password_hash else {
                return Err(ApiError::NoPassword);
            };
            let user_ok = match (&gui.user, &user) {
                (Some(want), Some(got)) => bool::from(want.as_bytes().ct_eq(got.as_bytes())),
                (Some(_), None) => false,
                (None, _) => true,
            };
            // Counted before the check runs; a wrong user name is checked all the same, so
            // the time taken does not tell which was wrong.
            let verified = state.sessions.attempt(now)?.verify(hash, password).await;
            if !(user_ok && verified) {
                return Err(ApiError::SignInRefused);
            }
            state.sessions.succeeded(now);
        }
        _ => {
            return Err(ApiError::BadRequest(
                "sign in with {\"api_key\"} or with {\"user\", \"password\"}".into(),
            ));
        }
    }
    let token = state.sessions.open(now);
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, session::cookie(&token, state.secure_cookies))])
        .into_response())
}

/// Signs this browser out: its session ends and its cookie is cleared. Needs no key.
#[utoipa::path(delete, path = "/api/session", responses((status = 204, description = "signed out")))]
pub(super) async fn sign_out(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        state.sessions.close(&token);
    }
    (StatusCode::NO_CONTENT, [(SET_COOKIE, session::expired_cookie())]).into_response()
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
