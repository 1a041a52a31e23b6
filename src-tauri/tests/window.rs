//! Closing the main window keeps the app running (in the tray), on the mock runtime: the mock
//! delivers a close request and, unless its handler prevents it, removes the window and, with
//! no window left, ends the app. (The mock passes window events only to the run callback, not
//! to the builder's `on_window_event`, so the test hands them to the app's handler itself.)

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tauri::test::{mock_builder, mock_context, noop_assets};
use tauri::{Manager as _, RunEvent};

/// Runs a mock app whose main window is asked to close once it is up. Returns whether the
/// window was still there after the close request was handled.
fn window_survives_close(handler: bool) -> bool {
    let app = peerfold_desktop::with_commands(mock_builder(), Vec::new())
        .build(mock_context(noop_assets()))
        .unwrap();
    let window = common::main_webview(&app);
    let rounds = AtomicU32::new(0);
    let survived = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&survived);
    app.run_return(move |handle, event| match event {
        RunEvent::Ready => window.close().unwrap(),
        RunEvent::WindowEvent { label, event, .. } if handler => {
            let target = handle.get_webview_window(&label).expect("the event's window").as_ref().window();
            peerfold_desktop::keep_in_tray(&target, &event);
        }
        // The mock handles queued messages (the close request) before this event.
        RunEvent::MainEventsCleared if rounds.fetch_add(1, Ordering::SeqCst) == 0 => {
            let there = handle.get_webview_window(peerfold_desktop::MAIN_WINDOW).is_some();
            *seen.lock().unwrap() = Some(there);
            if there {
                // Done: destroying the last window ends the mock's loop.
                window.destroy().unwrap();
            }
        }
        // Ended before a round: the window went, and the app with it.
        RunEvent::Exit => {
            seen.lock().unwrap().get_or_insert(false);
        }
        _ => {}
    });
    survived.lock().unwrap().expect("the app ran")
}

#[test]
fn closing_the_main_window_keeps_the_app_running() {
    assert!(window_survives_close(true), "the close request was not prevented");
    // The test can tell: without the handler the close goes through.
    assert!(!window_survives_close(false), "the mock closed nothing");
}
