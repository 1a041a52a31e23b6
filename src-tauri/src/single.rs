//! One app per home: a second launch on the same home asks the first to show its window and
//! exits, instead of starting another engine.
//!
//! The home lock says that some process runs the home; the first app also listens on
//! `desktop.sock` in the home (a Unix socket, owner only, like `control.sock`), where a second
//! launch sends `show`. Per home, not per app (as tauri-plugin-single-instance would be): two
//! homes are two devices and may run side by side.
//!
//! Windows has no such socket here yet: a second launch there reports the home as in use.

use std::path::Path;

use tauri::{AppHandle, Runtime};

/// The socket's file name in the home.
pub const SOCKET_FILE: &str = "desktop.sock";

/// Asks the app running `home` to show its window. False if no app answers there (the home is
/// run by `peerfold serve`, or another process that is not the app).
#[cfg(unix)]
pub fn ask_to_show(home: &Path) -> bool {
    use std::io::{BufRead as _, BufReader, Write as _};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(home.join(SOCKET_FILE)) else {
        return false;
    };
    let timeout = Some(std::time::Duration::from_secs(5));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    if stream.write_all(b"show\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).is_ok() && answer.trim() == "ok"
}

/// See the module documentation: no second-launch hand-over on this platform.
#[cfg(not(unix))]
pub fn ask_to_show(_home: &Path) -> bool {
    false
}

/// Listens on the home's `desktop.sock` and shows the main window when a second launch asks.
/// The caller holds the home lock, so a socket file already there is a dead app's.
#[cfg(unix)]
pub fn listen<R: Runtime>(home: &Path, app: AppHandle<R>) {
    use std::os::unix::fs::PermissionsExt as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let path = home.join(SOCKET_FILE);
    let _ = std::fs::remove_file(&path);
    let listener = match std::os::unix::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot listen for a second launch");
            return;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| listener.set_nonblocking(true))
    {
        tracing::warn!(error = %e, path = %path.display(), "cannot listen for a second launch");
        return;
    }
    tauri::async_runtime::spawn(async move {
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::warn!(error = %e, "cannot listen for a second launch"),
        };
        while let Ok((stream, _)) = listener.accept().await {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut read = tokio::io::BufReader::new(read);
            let asked =
                tokio::time::timeout(std::time::Duration::from_secs(5), read.read_line(&mut line)).await;
            if matches!(asked, Ok(Ok(_))) && line.trim() == "show" {
                crate::show_main(&app);
                let _ = write.write_all(b"ok\n").await;
            }
        }
    });
}

/// See the module documentation.
#[cfg(not(unix))]
pub fn listen<R: Runtime>(_home: &Path, _app: AppHandle<R>) {}
