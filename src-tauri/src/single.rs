//! One app per home: a second launch on the same home asks the first to show its window and
//! exits, instead of starting another engine.
//!
//! The home lock says that some process runs the home; the first app also listens on
//! `desktop.sock` in the home (a Unix socket, owner only, like `control.sock`), where a second
//! launch sends `show`. Per home, not per app (as tauri-plugin-single-instance would be): two
//! homes are two devices and may run side by side.
//!
//! On Windows the first app listens on a named pipe instead (`pipe_name`: the home's control
//! pipe's name with `-desktop` after it), local clients only, with the default pipe security as
//! the control pipe has (only the user, SYSTEM and administrators may write to it).

use std::path::Path;

use tauri::{AppHandle, Runtime};

/// The socket's file name in the home.
#[cfg(unix)]
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

/// How long a second launch waits for the first to answer.
#[cfg(windows)]
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The app's pipe for the home at `home`; see the module documentation.
#[cfg(windows)]
pub fn pipe_name(home: &Path) -> std::io::Result<String> {
    Ok(format!("{}-desktop", peerfold_engine::control::pipe_name(home)?))
}

/// As on Unix, through the home's pipe.
#[cfg(windows)]
pub fn ask_to_show(home: &Path) -> bool {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    use tokio::net::windows::named_pipe::ClientOptions;
    /// All instances busy: another launch is being answered; the app makes the next at once.
    const ERROR_PIPE_BUSY: i32 = 231;
    let Ok(name) = pipe_name(home) else { return false };
    let asked = async move {
        let client = loop {
            match ClientOptions::new().open(&name) {
                Ok(client) => break client,
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(_) => return false,
            }
        };
        let mut client = tokio::io::BufReader::new(client);
        if client.get_mut().write_all(b"show\n").await.is_err() {
            return false;
        }
        let mut answer = String::new();
        client.read_line(&mut answer).await.is_ok() && answer.trim() == "ok"
    };
    tauri::async_runtime::block_on(async move {
        tokio::time::timeout(ANSWER_WITHIN, asked).await.unwrap_or(false)
    })
}

/// One more instance of the app's pipe; only local clients may connect. The first fails if
/// another process owns the name already.
#[cfg(windows)]
fn pipe_instance(
    name: &str,
    first: bool,
) -> std::io::Result<tokio::net::windows::named_pipe::NamedPipeServer> {
    tokio::net::windows::named_pipe::ServerOptions::new()
        .first_pipe_instance(first)
        .reject_remote_clients(true)
        .create(name)
}

/// Listens on the home's pipe and calls `show` when a second launch asks.
#[cfg(windows)]
fn listen_with(home: &Path, show: impl Fn() + Send + 'static) {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    let name = match pipe_name(home) {
        Ok(name) => name,
        Err(e) => return tracing::warn!(error = %e, "cannot listen for a second launch"),
    };
    let runtime = tauri::async_runtime::handle();
    // Made now, in the runtime that serves it (a pipe registers with its reactor), so a launch
    // right after this one's start finds it.
    let first = {
        let _in_runtime = runtime.inner().enter();
        pipe_instance(&name, true)
    };
    let mut server = match first {
        Ok(server) => server,
        Err(e) => return tracing::warn!(error = %e, pipe = %name, "cannot listen for a second launch"),
    };
    runtime.spawn(async move {
        loop {
            let connected = server.connect().await;
            // The next instance is made before this one is answered, so a launch never finds
            // the pipe missing between two.
            let next = match pipe_instance(&name, false) {
                Ok(next) => next,
                Err(e) => {
                    return tracing::warn!(error = %e, pipe = %name, "cannot listen for a second launch");
                }
            };
            let current = std::mem::replace(&mut server, next);
            if connected.is_err() {
                // A client that left before it was accepted: wait for the next one.
                continue;
            }
            let mut stream = tokio::io::BufReader::new(current);
            let mut line = String::new();
            // A line is `show`: whatever else a local process sends is not kept.
            let mut request = (&mut stream).take(64);
            let asked = tokio::time::timeout(ANSWER_WITHIN, request.read_line(&mut line)).await;
            if matches!(asked, Ok(Ok(_))) && line.trim() == "show" {
                show();
                let _ = stream.get_mut().write_all(b"ok\n").await;
            }
        }
    });
}

/// Listens for a second launch on `home` and shows the main window when one asks.
pub fn listen<R: Runtime>(home: &Path, app: AppHandle<R>) {
    listen_with(home, move || crate::show_main(&app));
}

/// Listens on the home's `desktop.sock` and calls `show` when a second launch asks. The caller
/// holds the home lock, so a socket file already there is a dead app's.
#[cfg(unix)]
fn listen_with(home: &Path, show: impl Fn() + Send + 'static) {
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
                show();
                let _ = write.write_all(b"ok\n").await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_second_launch_has_the_first_show_its_window() {
        let home = tempfile::tempdir().unwrap();
        assert!(!ask_to_show(home.path()), "nothing listens yet");
        let shown = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&shown);
        listen_with(home.path(), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert!(ask_to_show(home.path()));
        assert_eq!(shown.load(Ordering::SeqCst), 1);
        // And again: the listener is still there for the next launch.
        assert!(ask_to_show(home.path()));
        assert_eq!(shown.load(Ordering::SeqCst), 2);
        // Another home's app is not this one.
        let other = tempfile::tempdir().unwrap();
        assert!(!ask_to_show(other.path()));
        assert_eq!(shown.load(Ordering::SeqCst), 2);
    }

    /// Nobody can hold a home's pipe name beside its app: the app makes the first instance, and
    /// another process cannot then make one of its own. Not under Wine: Wine 8 ignores
    /// FILE_FLAG_FIRST_PIPE_INSTANCE (the second "first" instance is made).
    #[cfg(all(windows, not(peerfold_wine)))]
    #[test]
    fn another_process_cannot_take_the_pipe() {
        let home = tempfile::tempdir().unwrap();
        listen_with(home.path(), || {});
        assert!(ask_to_show(home.path()), "the app listens");
        let name = pipe_name(home.path()).unwrap();
        let _in_runtime = tauri::async_runtime::handle().inner().enter();
        assert!(pipe_instance(&name, true).is_err());
        assert_ne!(name, peerfold_engine::control::pipe_name(home.path()).unwrap());
    }
}
