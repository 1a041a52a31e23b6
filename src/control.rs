//! The control socket: how a command reaches the daemon running on the same home.
//!
//! `peerfold serve` listens on `<home>/control.sock` (a Unix socket, mode 0600, so only the
//! owner can talk to it). A client sends one JSON request per line and reads one JSON reply per
//! line. The daemon answers from the one engine handle front-ends use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::engine::Engine;
use crate::identity::DeviceId;

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
    #[error("the daemon refused: {0}")]
    Refused(String),
}

/// What a client can ask.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Reply {
    Ok(serde_json::Value),
    Error(String),
}

/// Serves the control socket of the home at `home` until `shutdown` turns true.
pub async fn serve(
    home: &Path,
    me: DeviceId,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ControlError> {
    let path = home.join(SOCKET_FILE);
    // The caller holds the home lock, so a socket file left here belongs to a dead daemon.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(|source| ControlError::Listen { path: path.clone(), source })?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|source| ControlError::Listen { path: path.clone(), source })?;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let engine = Arc::clone(&engine);
                tokio::spawn(async move { let _ = handle(stream, me, &engine).await; });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn handle(stream: UnixStream, me: DeviceId, engine: &Engine) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::Error(format!("bad request: {e}")),
            Ok(Request::Status) => {
                let config = engine.config();
                match crate::status::status(me, &config, engine.index(), Some(engine)).await {
                    Ok(s) => serde_json::to_value(&s).map_or_else(|e| Reply::Error(e.to_string()), Reply::Ok),
                    Err(e) => Reply::Error(crate::engine::error_chain(&e)),
                }
            }
        };
        let mut text =
            serde_json::to_string(&reply).unwrap_or_else(|_| String::from("{\"error\":\"internal\"}"));
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
    Ok(())
}

/// Sends one request to the daemon running on the home at `home` and returns its answer.
pub async fn request(home: &Path, request: &Request) -> Result<serde_json::Value, ControlError> {
    let path = home.join(SOCKET_FILE);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|source| ControlError::Connect { path: path.clone(), source })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request).map_err(|e| ControlError::BadReply(e.to_string()))?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|source| ControlError::Connect { path: path.clone(), source })?;
    let reply = BufReader::new(read)
        .lines()
        .next_line()
        .await
        .map_err(|source| ControlError::Connect { path, source })?
        .ok_or_else(|| ControlError::BadReply(String::from("no answer")))?;
    match serde_json::from_str::<Reply>(&reply).map_err(|e| ControlError::BadReply(e.to_string()))? {
        Reply::Ok(v) => Ok(v),
        Reply::Error(e) => Err(ControlError::Refused(e)),
    }
}
