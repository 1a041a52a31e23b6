//! The API's one error type and how each becomes a status and `{"error": "..."}`.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::engine::error_chain;
use crate::service::ServiceError;

/// Why an API call (or starting the API) failed. Its text is the one sentence the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong: a malformed ID or body, a path that does not exist.
    #[error("{0}")]
    BadRequest(String),
    /// The folder, device or offer in the URL does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No route answers this method and path.
    #[error("there is no API route {0}")]
    NoRoute(String),
    #[error("this call needs the API key in the X-API-Key header, or a signed-in browser")]
    NoKey,
    #[error("the API key is not valid")]
    WrongKey,
    #[error("this browser's session has ended; sign in again")]
    SessionEnded,
    #[error("the user name or password is wrong")]
    SignInRefused,
    #[error(
        "no GUI password is set: sign in with the link `peerfold gui url` prints, or set a password \
         with `peerfold gui password`"
    )]
    NoPassword,
    #[error("too many failed sign-ins; try again in {} s", whole_seconds(*.retry_after))]
    TooManyAttempts { retry_after: std::time::Duration },
    /// Refused unchecked: as many password checks as may run at once are running.
    #[error("other sign-ins are being checked; try again in {} s", whole_seconds(*.retry_after))]
    SignInBusy { retry_after: std::time::Duration },
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
    /// Refused before looking at the key: a Host this server does not answer to (DNS
    /// rebinding) or an Origin other than the server itself (a cross-site request).
    #[error("{0}")]
    Forbidden(String),
    /// The service refused or failed a request: its status is the service's.
    #[error(transparent)]
    Service(ServiceError),
    #[error("cannot serve the API on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the HTTPS certificate {}: {reason}", path.display())]
    Certificate { path: std::path::PathBuf, reason: String },
    #[error(
        "refusing to serve the API on {0}, which is not a loopback address, without a GUI password \
         (set one with `peerfold gui password`, or use 127.0.0.1)"
    )]
    NeedsPassword(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Service(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) | Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::NoKey | Self::WrongKey | Self::SessionEnded | Self::SignInRefused | Self::NoPassword => {
                StatusCode::UNAUTHORIZED
            }
            Self::TooManyAttempts { .. } | Self::SignInBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Bind { .. } | Self::NeedsPassword(_) | Self::Certificate { .. } | Self::Hash(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The service's errors say their kind too, so the CLI reads them back whole.
        let body = match &self {
            Self::Service(e) => serde_json::to_value(e).unwrap_or_default(),
            e => serde_json::json!({ "error": error_chain(e) }),
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Self::TooManyAttempts { retry_after } | Self::SignInBusy { retry_after } = self {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(whole_seconds(retry_after)));
        }
        response
    }
}

/// `Retry-After` counts whole seconds: rounded up, and at least one, so a client that waits
/// as told is not refused again for a fraction of a second.
fn whole_seconds(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}
