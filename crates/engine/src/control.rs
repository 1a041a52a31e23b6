//! The control socket: how a command reaches the daemon running on the same home.
//!
//! The daemon (`peerfold serve` or the desktop app) serves the typed service on
//! `<home>/control.sock`: a Unix socket, mode 0600, so only the owner can talk to it, and no API
//! key is needed. On Windows it is a named pipe instead, named after the home
//! (`pipe_name`), local clients only, whose security descriptor grants the user the daemon runs
//! as all access and nobody else any (a protected DACL with that one entry: not SYSTEM, not the
//! administrators, not the "everyone may read" of the default pipe security), which is the
//! whole of its authentication, as the socket's mode is on Unix.
//! On Windows the typed route is all it serves, whatever the front-end. The CLI sends each
//! [`Request`] as it is to `POST /api/call` ([`CALL_PATH`], [`call`]) and gets the typed
//! [`Response`] back, or the [`ServiceError`] with its status code.
//! With no daemon running, the CLI asks [`crate::service::Offline`] instead, so every command
//! behaves the same either way.
//!
//! Who answers on the socket is the daemon's HTTP front-end's choice
//! (`daemon::HttpFrontEnd::serve_control`): `peerfold serve` serves its whole control
//! API there (trusted); without an HTTP front-end (the desktop app) `serve_typed` answers
//! that one route itself, with hyper, so the engine crate and the app need no HTTP API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::identity::DeviceId;
use crate::service::{Request, Response, ServiceError};

/// The largest request body the socket reads: a request is a few hundred bytes (an ignore file
/// or a list of folders at most).
const MAX_REQUEST: usize = 1 << 20;
/// How long open requests may take to finish once the daemon stops.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The socket's file name in the home.
pub const SOCKET_FILE: &str = "control.sock";

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on the control socket {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the running daemon at {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon's answer is not valid: {0}")]
    BadReply(String),
    /// The daemon's answer to a request it could not carry out, as it would be said without
    /// a daemon.
    #[error(transparent)]
    Refused(ServiceError),
}

/// The control socket, bound and not yet served: bound by [`bind`] while the daemon starts, so
/// that a command run the moment the daemon says it listens finds it.
#[cfg(unix)]
pub struct Bound {
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

/// The control pipe's first instance, created and not yet served (see the Unix [`Bound`]).
#[cfg(windows)]
pub struct Bound {
    server: tokio::net::windows::named_pipe::NamedPipeServer,
    name: String,
    /// What every instance of the pipe is created with.
    security: security::Descriptor,
}

#[cfg(windows)]
#[allow(unsafe_code)] // Win32 calls std does not wrap.
mod security {
    //! The control pipe's security: a descriptor granting the user this process runs as all
    //! access, and nobody else any, made from the SDDL `D:P(A;;GA;;;<the user's SID>)` (a
    //! protected DACL, so nothing is inherited into it, with one "allow generic all" entry).

    use std::io;
    use std::ptr::null_mut;

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::{
        GetTokenInformation, PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
        TokenUser,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    /// The `TOKEN_USER` of this process's token, in a buffer of our own (8-byte aligned, as
    /// the structure needs): its SID points inside it.
    pub(crate) struct UserSid(Vec<u64>);

    impl UserSid {
        pub(crate) fn current() -> io::Result<Self> {
            let mut token: HANDLE = null_mut();
            // SAFETY: the pseudo-handle of this process, and a place for the token's handle.
            if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
                return Err(io::Error::last_os_error());
            }
            let token = Handle(token);
            let mut len = 0u32;
            // SAFETY: asks the size only (no buffer); it fails with "insufficient buffer".
            unsafe { GetTokenInformation(token.0, TokenUser, null_mut(), 0, &mut len) };
            if (len as usize) < size_of::<TOKEN_USER>() {
                return Err(io::Error::last_os_error());
            }
            let mut buf = vec![0u64; (len as usize).div_ceil(8)];
            // SAFETY: `buf` holds `len` bytes, aligned for TOKEN_USER.
            let ok =
                unsafe { GetTokenInformation(token.0, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self(buf))
        }

        /// The SID, valid while `self` lives.
        pub(crate) fn sid(&self) -> PSID {
            // SAFETY: `current` filled the buffer with a TOKEN_USER.
            unsafe { (*self.0.as_ptr().cast::<TOKEN_USER>()).User.Sid }
        }

        /// The SID as SDDL writes it (`S-1-5-21-…`).
        fn to_sddl(&self) -> io::Result<String> {
            let mut text = null_mut();
            // SAFETY: a valid SID; the string comes from LocalAlloc and is freed below.
            if unsafe { ConvertSidToStringSidW(self.sid(), &mut text) } == 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a NUL-terminated wide string from the call above.
            let sid = unsafe {
                let len = (0..).take_while(|&i| *text.add(i) != 0).count();
                String::from_utf16_lossy(std::slice::from_raw_parts(text, len))
            };
            // SAFETY: allocated by ConvertSidToStringSidW with LocalAlloc.
            unsafe { LocalFree(text.cast()) };
            Ok(sid)
        }
    }

    struct Handle(HANDLE);

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: a handle this module opened and owns.
            unsafe { CloseHandle(self.0) };
        }
    }

    /// A self-relative security descriptor from the system's allocator, freed on drop.
    pub(crate) struct Descriptor(PSECURITY_DESCRIPTOR);

    // SAFETY: the descriptor is immutable memory owned by this value alone; Windows reads it.
    unsafe impl Send for Descriptor {}
    // SAFETY: as above: only read, never written, after it is made.
    unsafe impl Sync for Descriptor {}

    impl Descriptor {
        /// Everything for the user this process runs as, nothing for anyone else.
        pub(crate) fn user_only() -> io::Result<Self> {
            let sid = UserSid::current()?.to_sddl()?;
            let sddl: Vec<u16> = format!("D:P(A;;GA;;;{sid})").encode_utf16().chain([0]).collect();
            let mut descriptor = null_mut();
            // SAFETY: a NUL-terminated SDDL string; the descriptor is freed in `drop`.
            let ok = unsafe {
                ConvertStringSecurityDescriptorToSecurityDescriptorW(
                    sddl.as_ptr(),
                    SDDL_REVISION_1,
                    &mut descriptor,
                    null_mut(),
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self(descriptor))
        }

        /// Security attributes pointing at the descriptor: valid while `self` lives.
        pub(crate) fn attributes(&self) -> SECURITY_ATTRIBUTES {
            SECURITY_ATTRIBUTES {
                nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
                lpSecurityDescriptor: self.0,
                bInheritHandle: 0,
            }
        }
    }

    impl Drop for Descriptor {
        fn drop(&mut self) {
            // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
            unsafe { LocalFree(self.0) };
        }
    }
}

/// The name of the control pipe of the home at `home`: one per home, as the socket is, from
/// the SHA-256 of its absolute path (a pipe name cannot hold every path).
#[cfg(windows)]
pub fn pipe_name(home: &Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    let home = std::path::absolute(home)?;
    let digest = sha2::Sha256::digest(home.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(format!(r"\\.\pipe\peerfold-control-{hex}"))
}

/// One more instance of the pipe `name`, for the next client; only local clients of the user
/// `security` admits may connect.
#[cfg(windows)]
#[allow(unsafe_code)]
fn pipe_instance(
    name: &str,
    first: bool,
    security: &security::Descriptor,
) -> std::io::Result<tokio::net::windows::named_pipe::NamedPipeServer> {
    let mut attributes = security.attributes();
    let mut options = tokio::net::windows::named_pipe::ServerOptions::new();
    // The first instance fails if another process already owns the name: nobody can sit on a
    // home's pipe before its daemon.
    options.first_pipe_instance(first).reject_remote_clients(true);
    // SAFETY: `attributes` is a SECURITY_ATTRIBUTES whose descriptor lives in `security`,
    // which outlives the call (Windows copies what it keeps).
    unsafe { options.create_with_security_attributes_raw(name, (&raw mut attributes).cast()) }
}

/// Creates the control pipe of the home at `home`.
#[cfg(windows)]
pub fn bind(home: &Path) -> Result<Bound, ControlError> {
    let listen_error = |path: PathBuf, source| ControlError::Listen { path, source };
    let name = pipe_name(home).map_err(|e| listen_error(home.to_owned(), e))?;
    let security = security::Descriptor::user_only().map_err(|e| listen_error(PathBuf::from(&name), e))?;
    let server = pipe_instance(&name, true, &security).map_err(|e| listen_error(PathBuf::from(&name), e))?;
    Ok(Bound { server, name, security })
}

/// Serves the typed route on the control pipe until `shutdown` turns true, as `serve_typed`
/// does on the Unix socket.
#[cfg(windows)]
pub async fn serve_pipe(
    bound: Bound,
    engine: Arc<Engine>,
    me: DeviceId,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    let Bound { mut server, name, security } = bound;
    let service = crate::service::Running::new(engine, me);
    let mut connections = tokio::task::JoinSet::new();
    let stop = stopped(shutdown.clone());
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            connected = server.connect() => {
                // The next instance is made before this one is handed on, so a client never
                // finds the pipe missing between two.
                let next = pipe_instance(&name, false, &security)
                    .map_err(|source| ControlError::Listen { path: PathBuf::from(&name), source })?;
                let client = std::mem::replace(&mut server, next);
                match connected {
                    Ok(()) => {
                        connections.spawn(connection(client, service.clone(), shutdown.clone()));
                    }
                    Err(e) => tracing::debug!(error = %e, "control pipe: connect failed"),
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drain(connections).await;
    Ok(())
}

/// Binds the control socket of the home at `home`. The socket is the owner's alone (mode
/// 0600), which is the whole of its authentication.
#[cfg(unix)]
pub fn bind(home: &Path) -> Result<Bound, ControlError> {
    let path = home.join(SOCKET_FILE);
    let listen_error = |source| ControlError::Listen { path: path.clone(), source };
    // The caller holds the home lock, so a socket file left here belongs to a dead daemon.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).map_err(listen_error)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(listen_error)?;
    Ok(Bound { listener, path })
}

/// See the other [`bind`].
#[cfg(not(any(unix, windows)))]
pub fn bind(_home: &Path) -> Result<Bound, ControlError> {
    Ok(Bound)
}

/// Neither Unix sockets nor named pipes: no control channel.
#[cfg(not(any(unix, windows)))]
pub struct Bound;

/// Serves the bound socket with `serve` (the daemon's choice of server: see
/// `daemon::HttpFrontEnd::serve_control`) until it returns, then removes the socket.
#[cfg(unix)]
pub async fn serve<Fut>(
    bound: Bound,
    serve: impl FnOnce(tokio::net::UnixListener) -> Fut,
) -> Result<(), ControlError>
where
    Fut: Future<Output = std::io::Result<()>>,
{
    let Bound { listener, path } = bound;
    let served = serve(listener).await.map_err(|source| ControlError::Listen { path: path.clone(), source });
    let _ = std::fs::remove_file(&path);
    served
}

/// The engine's own control server: `POST /api/call` and nothing else, until `shutdown` turns
/// true (requests in progress then finish, for up to a few seconds). One task per connection.
#[cfg(unix)]
pub async fn serve_typed(
    listener: tokio::net::UnixListener,
    engine: Arc<Engine>,
    me: DeviceId,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let service = crate::service::Running::new(engine, me);
    let mut connections = tokio::task::JoinSet::new();
    let stop = stopped(shutdown.clone());
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, service.clone(), shutdown.clone()));
                }
                // A connection that failed before it was accepted (the client gave up, or the
                // process is out of descriptors for a moment) ends only that connection.
                Err(e) => tracing::debug!(error = %e, "control socket: accept failed"),
            },
            // Finished connections leave the set as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drain(connections).await;
    Ok(())
}

/// Lets open requests finish, for up to [`DRAIN`].
async fn drain(mut connections: tokio::task::JoinSet<()>) {
    let drained =
        tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("control socket: requests still open after {DRAIN:?}; ending them");
    }
}

/// Answers the requests of one connection, closing it gracefully when the daemon stops.
async fn connection(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    service: crate::service::Running,
    shutdown: watch::Receiver<bool>,
) {
    let answer = hyper::service::service_fn(move |request| {
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(&service, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), answer);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "control socket: connection ended");
            }
        }
        () = stopped(shutdown) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Returns once `shutdown` turns true (or its sender is gone), holding no borrow of it.
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One request's answer: `POST /api/call` with a [`Request`] gets the [`Response`], or the
/// [`ServiceError`] with its status code, exactly as from the HTTP API's route.
async fn answer(
    service: &crate::service::Running,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use crate::service::Service as _;
    use http_body_util::BodyExt as _;
    if request.method() != http::Method::POST || request.uri().path() != CALL_PATH {
        let refused = ServiceError::NotFound(format!(
            "the control socket answers only POST {CALL_PATH}, not {} {}",
            request.method(),
            request.uri().path()
        ));
        return json(refused.http_status(), &refused);
    }
    let body = match http_body_util::Limited::new(request.into_body(), MAX_REQUEST).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            let refused = ServiceError::BadRequest(format!("cannot read the request: {e}"));
            return json(refused.http_status(), &refused);
        }
    };
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let refused = ServiceError::BadRequest(format!("not a request: {e}"));
            return json(refused.http_status(), &refused);
        }
    };
    match service.handle(request).await {
        Ok(response) => json(200, &response),
        Err(refused) => json(refused.http_status(), &refused),
    }
}

/// `value` as a JSON answer with `status`.
fn json(status: u16, value: &impl serde::Serialize) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    // Our own types always serialize; an empty body would still be a well-formed answer.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// The daemon serves no control channel here, and the CLI says that a running daemon cannot be
/// reached.
#[cfg(not(any(unix, windows)))]
pub async fn serve(_bound: Bound, mut shutdown: watch::Receiver<bool>) -> Result<(), ControlError> {
    let _ = shutdown.wait_for(|stop| *stop).await;
    Ok(())
}

/// See the other [`call`].
#[cfg(not(any(unix, windows)))]
pub async fn call(home: &Path, _request: &Request) -> Result<Response, ControlError> {
    Err(ControlError::Connect {
        path: home.join(SOCKET_FILE),
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this system has no control socket yet; stop the daemon to change its home",
        ),
    })
}

/// Asks the daemon running on the home at `home`: `request` as JSON to `POST /api/call` on
/// its control socket, and its typed answer back.
#[cfg(unix)]
pub async fn call(home: &Path, request: &Request) -> Result<Response, ControlError> {
    let path = home.join(SOCKET_FILE);
    let connect_error = |source| ControlError::Connect { path: path.clone(), source };
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(connect_error)?;
    call_over(stream, &path, request).await
}

/// Asks the daemon running on the home at `home` through its control pipe (see the Unix
/// [`call`]).
#[cfg(windows)]
pub async fn call(home: &Path, request: &Request) -> Result<Response, ControlError> {
    use tokio::net::windows::named_pipe::ClientOptions;
    /// Every instance busy: Windows' answer while the server makes the next one.
    const ERROR_PIPE_BUSY: i32 = 231;
    let name = pipe_name(home).map_err(|source| ControlError::Connect { path: home.to_owned(), source })?;
    let connect_error = |source| ControlError::Connect { path: PathBuf::from(&name), source };
    let mut waited = 0;
    let stream = loop {
        match ClientOptions::new().open(&name) {
            Ok(stream) => break stream,
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && waited < 50 => {
                waited += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(connect_error(e)),
        }
    };
    call_over(stream, Path::new(&name), request).await
}

/// `request` as JSON to `POST /api/call` over `stream`, and the daemon's typed answer.
async fn call_over(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    path: &Path,
    request: &Request,
) -> Result<Response, ControlError> {
    use http_body_util::BodyExt as _;
    let bad = |e: &dyn std::fmt::Display| ControlError::BadReply(e.to_string());
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| bad(&e))?;
    let connection = tokio::spawn(connection);
    let body = serde_json::to_vec(request).map_err(|e| bad(&e))?;
    let call = http::Request::builder()
        .method(http::Method::POST)
        .uri(CALL_PATH)
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| bad(&e))?;
    let response = sender.send_request(call).await.map_err(|e| {
        // Closed with no answer at all: the daemon is stopping (on Windows a pipe instance
        // outlives its server for a moment, until its cancelled wait completes), so there is
        // no daemon to answer, as when the connection is refused.
        if e.is_incomplete_message() {
            let source = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e);
            ControlError::Connect { path: path.to_owned(), source }
        } else {
            bad(&e)
        }
    })?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(|e| bad(&e))?.to_bytes();
    connection.abort();
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| bad(&e));
    }
    // A refusal is the service's error as it is; anything else (a proxy's or router's answer)
    // is said as it came.
    match serde_json::from_slice::<ServiceError>(&bytes) {
        Ok(refused) => Err(ControlError::Refused(refused)),
        Err(_) => {
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = value["error"]
                .as_str()
                .map_or_else(|| format!("the daemon answered {status}"), str::to_owned);
            Err(ControlError::Refused(ServiceError::Failed(message)))
        }
    }
}

/// The route that answers a typed [`Request`], on the control socket as on the GUI address.
pub const CALL_PATH: &str = "/api/call";

#[cfg(all(test, windows))]
#[allow(unsafe_code)]
mod tests {
    use std::os::windows::io::AsRawHandle as _;
    use std::ptr::null_mut;

    use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
    use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_KERNEL_OBJECT};
    use windows_sys::Win32::Security::{
        ACCESS_ALLOWED_ACE, ACL, ACL_SIZE_INFORMATION, AclSizeInformation, DACL_SECURITY_INFORMATION,
        EqualSid, GetAce, GetAclInformation, GetSecurityDescriptorControl, SE_DACL_PROTECTED,
    };

    use super::*;

    /// winnt.h's value (windows-sys has it behind a feature of its own).
    const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;

    /// The pipe's DACL, read back from the system: protected (nothing inherited), one entry,
    /// which allows this process's user. Runs under Wine in `.ci/run`.
    #[tokio::test]
    async fn the_control_pipe_admits_only_this_user() {
        let home = tempfile::tempdir().unwrap();
        let bound = bind(home.path()).unwrap();
        let user = security::UserSid::current().unwrap();
        let (mut dacl, mut descriptor): (*mut ACL, _) = (null_mut(), null_mut());
        // SAFETY: the pipe's handle, alive in `bound`; the descriptor is freed below, and the
        // DACL points into it.
        let read = unsafe {
            GetSecurityInfo(
                bound.server.as_raw_handle(),
                SE_KERNEL_OBJECT,
                DACL_SECURITY_INFORMATION,
                null_mut(),
                null_mut(),
                &mut dacl,
                null_mut(),
                &mut descriptor,
            )
        };
        assert_eq!(read, ERROR_SUCCESS, "GetSecurityInfo failed");
        assert!(!dacl.is_null(), "no DACL: everyone may connect");
        let (mut control, mut revision) = (0u16, 0u32);
        let mut size = ACL_SIZE_INFORMATION { AceCount: 0, AclBytesInUse: 0, AclBytesFree: 0 };
        let mut ace: *mut std::ffi::c_void = null_mut();
        // SAFETY: the descriptor and DACL GetSecurityInfo returned; the out-parameters are ours.
        let (protected, count, ace_type, ace_is_user) = unsafe {
            assert_ne!(GetSecurityDescriptorControl(descriptor, &mut control, &mut revision), 0);
            let size_ptr = (&raw mut size).cast();
            let size_len = size_of::<ACL_SIZE_INFORMATION>() as u32;
            assert_ne!(GetAclInformation(dacl, size_ptr, size_len, AclSizeInformation), 0);
            assert_ne!(GetAce(dacl, 0, &mut ace), 0);
            let ace = ace.cast::<ACCESS_ALLOWED_ACE>();
            let sid = (&raw mut (*ace).SidStart).cast();
            (
                control & SE_DACL_PROTECTED != 0,
                size.AceCount,
                (*ace).Header.AceType,
                EqualSid(sid, user.sid()) != 0,
            )
        };
        // SAFETY: allocated by GetSecurityInfo; `dacl` and `ace` are not used past this.
        unsafe { LocalFree(descriptor) };
        assert!(protected, "the DACL inherits entries");
        assert_eq!(count, 1, "the DACL has other entries than the user's");
        assert_eq!(ace_type, ACCESS_ALLOWED_ACE_TYPE, "the one entry does not allow");
        assert!(ace_is_user, "the one entry is not this user");
        drop(bound);
    }
}
