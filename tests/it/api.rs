//! The control API of a real `peerfold serve`, over HTTP on loopback: who may call, each
//! resource, and bad input refused with a clear error and nothing changed.

use std::io::{BufRead as _, Read as _, Write as _};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Daemon, TestDir, free_port, ok, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// A daemon on a fresh home, and what it takes to call its API.
struct Api {
    t: TestDir,
    daemon: Daemon,
    key: String,
    agent: ureq::Agent,
    /// This device's ID.
    id: String,
}

impl Api {
    fn start() -> Self {
        Self::start_on(TestDir::new(), &format!("tcp://127.0.0.1:{}", free_port()))
    }

    fn start_on(t: TestDir, listen: &str) -> Self {
        let id = ok(&t.peerfold(&["id"])).trim().to_owned();
        let daemon = Daemon::start(&t, listen);
        // The key was generated on this first start and saved for the user to read.
        let config: toml::Table =
            std::fs::read_to_string(t.home().join("config.toml")).unwrap().parse().unwrap();
        let key = config["gui"]["api_key"].as_str().expect("a generated API key").to_owned();
        assert!(key.len() >= 32, "{key}");
        Self { t, daemon, key, agent: agent(), id }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.daemon.api)
    }

    fn answer(mut response: ureq::http::Response<ureq::Body>) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        Self::answer(self.agent.get(self.url(path)).header("X-API-Key", &self.key).call().unwrap())
    }

    fn send(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let url = self.url(path);
        let response = match method {
            "POST" => self.agent.post(url).header("X-API-Key", &self.key).send_json(&body),
            "PATCH" => self.agent.patch(url).header("X-API-Key", &self.key).send_json(&body),
            "PUT" => self.agent.put(url).header("X-API-Key", &self.key).send_json(&body),
            "DELETE" => self.agent.delete(url).header("X-API-Key", &self.key).call(),
            _ => unreachable!(),
        };
        Self::answer(response.unwrap())
    }

    /// `send`, expecting `status` and an error containing `want`, and the devices and folders
    /// as they were.
    fn refused(&self, method: &str, path: &str, body: Value, status: u16, want: &str) {
        let before = (self.get("/api/devices"), self.get("/api/folders"));
        let (got, answer) = self.send(method, path, body.clone());
        let error = answer["error"].as_str().unwrap_or_else(|| panic!("no error in {answer} for {body}"));
        assert_eq!(got, status, "{method} {path} {body}: {error}");
        assert!(error.contains(want), "want {want:?} in {error:?}");
        assert_eq!((self.get("/api/devices"), self.get("/api/folders")), before, "{error}: nothing changed");
    }
}

/// An HTTP client that answers every status, on a new connection per request: the server
/// closes a connection whose request body a handler did not read, and a pooled connection
/// closed that way fails the next request.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections(0).build().into()
}

/// One request written by hand, for headers an HTTP client would not let us get wrong.
fn raw(addr: &str, head: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

const OTHER: &str = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";

#[test]
fn only_callers_with_the_key_on_this_host_and_origin_get_in() {
    let api = Api::start();
    let addr = &api.daemon.api;
    let port = addr.rsplit(':').next().unwrap();
    let key = &api.key;

    let (status, text) = raw(addr, "GET /api/system HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    assert_eq!(status, 403, "the wrong port is another host: {text}");
    let cases = [
        (format!("Host: {addr}\r\n"), 401, "needs the API key"),
        (format!("Host: {addr}\r\nX-API-Key: wrong\r\n"), 401, "not valid"),
        (format!("Host: {addr}\r\nX-API-Key: {key}x\r\n"), 401, "not valid"),
        (
            format!("Host: evil.example:{port}\r\nX-API-Key: {key}\r\n"),
            403,
            "not an address this API answers to",
        ),
        (format!("Host: {addr}\r\nX-API-Key: {key}\r\nOrigin: http://evil.example\r\n"), 403, "cross-site"),
        (format!("Host: {addr}\r\nX-API-Key: {key}\r\nOrigin: null\r\n"), 403, "cross-site"),
        (
            format!("Host: {addr}\r\nX-API-Key: {key}\r\nOrigin: http://localhost:{port}\r\n"),
            403,
            "cross-site",
        ),
        (
            format!("Host: localhost:{port}\r\nX-API-Key: {key}\r\nOrigin: http://localhost:{port}\r\n"),
            200,
            "\"id\"",
        ),
        (format!("Host: {addr}\r\nX-API-Key: {key}\r\n"), 200, "\"id\""),
    ];
    for (headers, want_status, want_text) in cases {
        let (status, text) = raw(addr, &format!("GET /api/system HTTP/1.1\r\n{headers}"));
        assert_eq!(status, want_status, "{headers}: {text}");
        assert!(text.contains(want_text), "{headers}: want {want_text:?} in {text}");
    }
    // A refusal comes before any routing: nothing about the API shows without the key.
    let (status, _) = raw(addr, &format!("GET /api/nothing-here HTTP/1.1\r\nHost: {addr}\r\n"));
    assert_eq!(status, 401);
}

#[test]
fn system_status_and_qr_code_describe_this_device() {
    let api = Api::start();
    let id = api.id.clone();
    let (status, system) = api.get("/api/system");
    assert_eq!(status, 200, "{system}");
    assert_eq!(system["id"], id.as_str());
    assert_eq!(system["version"], env!("CARGO_PKG_VERSION"));
    assert!(system["uptime_s"].as_u64().is_some() && system["name"].is_string(), "{system}");

    let mut qr = api.agent.get(api.url("/api/system/qr.svg")).header("X-API-Key", &api.key).call().unwrap();
    assert_eq!(qr.status(), 200);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert!(qr.body_mut().read_to_string().unwrap().contains("<svg"));

    let (status, st) = api.get("/api/status");
    assert_eq!(status, 200, "{st}");
    assert_eq!((st["device"].as_str(), &st["running"]), (Some(id.as_str()), &json!(true)));
}

#[test]
fn devices_are_added_edited_paused_and_removed() {
    let api = Api::start();
    let (status, added) = api.send("POST", "/api/devices", json!({"id": OTHER, "name": "laptop"}));
    assert_eq!(status, 201, "{added}");
    assert!(added["message"].as_str().unwrap().contains("Added device"), "{added}");
    let path = format!("/api/devices/{OTHER}");
    let (status, edited) =
        api.send("PATCH", &path, json!({"name": "nas", "addresses": ["tcp://127.0.0.1:1"], "paused": true}));
    assert_eq!(status, 200, "{edited}");
    let (status, limited) = api.send("PATCH", &path, json!({"max_send_kibps": 256}));
    assert_eq!(status, 200, "{limited}");
    assert!(
        limited["message"].as_str().unwrap().contains("sending 256 KiB/s, receiving unlimited"),
        "{limited}"
    );
    let (_, devices) = api.get("/api/devices");
    assert_eq!(
        devices,
        json!([{
            "id": OTHER, "name": "nas", "addresses": ["tcp://127.0.0.1:1"], "paused": true,
            "auto_accept_folders": false, "introducer": false, "introduced_by": null, "folders": [],
            "max_send_kibps": 256, "max_recv_kibps": 0
        }])
    );
    // The global limits and pausing every device are configuration edits; status shows them.
    let (status, set) =
        api.send("POST", "/api/config/edits", json!({"edit": "set-limits", "max_recv_kibps": 1024}));
    assert_eq!(status, 200, "{set}");
    let (status, paused) =
        api.send("POST", "/api/config/edits", json!({"edit": "pause-all", "pause": "until-resumed"}));
    assert_eq!(status, 200, "{paused}");
    // The engine applies it a moment later: a bounded wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let st = loop {
        let (_, st) = api.get("/api/status");
        if !st["bandwidth"]["paused"].as_array().is_some_and(Vec::is_empty) {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "the pause never showed in status: {st}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(st["bandwidth"]["max_recv_kibps"], 1024);
    assert_eq!(st["bandwidth"]["paused"], json!([{"reason": "user", "until": null}]));
    api.send("POST", "/api/config/edits", json!({"edit": "pause-all"}));
    // The schedule is the whole list in one set-limits edit (the web UI's rule editor sends
    // it so); status lists it once the engine applied it.
    let rule = json!({"days": ["mon", "fri"], "from": "09:00", "to": "17:30", "max_send_kibps": 64});
    let (status, set) =
        api.send("POST", "/api/config/edits", json!({"edit": "set-limits", "schedule": [rule]}));
    assert_eq!(status, 200, "{set}");
    assert!(set["message"].as_str().unwrap().contains("1 schedule rule"), "{set}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while api.get("/api/status").1["bandwidth"]["schedule"] != json!([rule]) {
        assert!(std::time::Instant::now() < deadline, "the schedule never showed in status");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let both = json!({"from": "09:00", "to": "17:00", "pause": true, "max_send_kibps": 5});
    api.refused(
        "POST",
        "/api/config/edits",
        json!({"edit": "set-limits", "schedule": [both]}),
        400,
        "either pause",
    );
    assert!(ok(&api.t.peerfold(&["limits"])).contains("Schedule 1: mon,fri 09:00-17:30: sending 64 KiB/s"));
    // The daemon saved it, as the CLI shows.
    assert!(ok(&api.t.peerfold(&["device", "list"])).contains("\"nas\""));

    let own = api.id.clone();
    api.refused("POST", "/api/devices", json!({"id": "not-a-device"}), 400, "is not a device ID");
    api.refused("POST", "/api/devices", json!({"id": own}), 400, "this device's own ID");
    api.refused("POST", "/api/devices", json!({"id": OTHER}), 400, "already configured");
    api.refused("POST", "/api/devices", json!({"name": "x"}), 400, "missing field `id`");
    api.refused("PATCH", &path, json!({"addresses": ["smtp://x"]}), 400, "unknown scheme");
    api.refused("PATCH", &path, json!({"colour": "red"}), 400, "unknown field");
    api.refused("PATCH", "/api/devices/nonsense", json!({"name": "x"}), 400, "is not a device ID");
    let unknown = ok(&TestDir::new().peerfold(&["id"])).trim().to_owned();
    api.refused("DELETE", &format!("/api/devices/{unknown}"), json!(null), 404, "not a configured device");
    api.refused(
        "PATCH",
        &format!("/api/devices/{unknown}"),
        json!({"paused": true}),
        404,
        "not a configured device",
    );

    let (status, removed) = api.send("DELETE", &path, json!(null));
    assert_eq!(status, 200, "{removed}");
    assert_eq!(api.get("/api/devices").1, json!([]));
}

#[test]
fn folders_are_added_edited_scanned_and_removed_and_bad_ones_refused() {
    let api = Api::start();
    api.send("POST", "/api/devices", json!({"id": OTHER}));
    let root = api.t.path("docs");
    std::fs::create_dir(&root).unwrap();
    api.t.write("docs/a.txt", b"hello");
    let root_s = root.to_str().unwrap();
    let (status, added) = api.send(
        "POST",
        "/api/folders",
        json!({"id": "docs", "path": root_s, "label": "Docs", "devices": [OTHER], "type": "send-only"}),
    );
    assert_eq!(status, 201, "{added}");

    let (status, scanned) = api.send("POST", "/api/folders/docs/scan", json!(null));
    assert_eq!(status, 200, "{scanned}");
    assert_eq!(scanned["files"], 1, "{scanned}");

    let (status, edited) = api.send(
        "PATCH",
        "/api/folders/docs",
        json!({"label": "Papers", "devices": [], "versioning": {"type": "none"}, "paused": true}),
    );
    assert_eq!(status, 200, "{edited}");
    let (_, folders) = api.get("/api/folders");
    let f = &folders[0];
    assert_eq!(
        (&f["label"], &f["devices"], &f["versioning"], &f["paused"], &f["type"]),
        (&json!("Papers"), &json!([]), &json!({"type": "none"}), &json!(true), &json!("send-only")),
        "{folders}"
    );
    let (status, paused) = api.send("POST", "/api/folders/docs/scan", json!(null));
    assert_eq!((status, paused["error"].as_str().unwrap().contains("paused")), (400, true), "{paused}");

    // Bad input: each refused with its reason, nothing changed.
    let missing = api.t.path("missing");
    let inside = root.join("sub");
    std::fs::create_dir(&inside).unwrap();
    let post = |body: Value, want: &str| api.refused("POST", "/api/folders", body, 400, want);
    post(json!({"id": "m", "path": missing}), "does not exist");
    post(json!({"id": "m", "path": "relative/dir"}), "not absolute");
    post(json!({"id": "m", "path": inside}), "is inside folder \"docs\"");
    post(json!({"id": "docs", "path": api.t.path("home").join("x"), "create": true}), "already used");
    post(json!({"id": "m", "path": missing, "devices": ["not-an-id"]}), "is not a device ID");
    let stranger = ok(&TestDir::new().peerfold(&["id"])).trim().to_owned();
    post(
        json!({"id": "m", "path": missing, "create": true, "devices": [stranger]}),
        "not a configured device",
    );
    post(json!({"id": "", "path": missing}), "is not a folder ID");
    post(json!({"id": "m", "path": missing, "type": "mirror"}), "unknown variant");
    assert!(!missing.exists(), "a refused folder is not created");
    api.refused("PATCH", "/api/folders/docs", json!({"devices": [stranger]}), 400, "not a configured device");
    api.refused("PATCH", "/api/folders/nope", json!({"label": "x"}), 404, "no folder with ID \"nope\"");
    api.refused("DELETE", "/api/folders/nope", json!(null), 404, "no folder");
    api.refused("POST", "/api/folders/nope/scan", json!(null), 404, "no folder");

    // create: true makes the directory.
    let (status, made) =
        api.send("POST", "/api/folders", json!({"id": "new", "path": missing, "create": true}));
    assert_eq!(status, 201, "{made}");
    assert!(missing.join(".stfolder").is_dir());

    let (status, removed) = api.send("DELETE", "/api/folders/docs", json!(null));
    assert_eq!(status, 200, "{removed}");
    assert!(root.join("a.txt").exists(), "a removed folder's files stay");
    let (_, folders) = api.get("/api/folders");
    assert_eq!(folders.as_array().unwrap().len(), 1, "{folders}");
}

/// A conflict copy's name for `stem.ext` made by the device with short ID `short`.
fn conflict_copy(stem: &str, ext: &str, short: &str) -> String {
    format!("{stem}.sync-conflict-20261121-101010-{short}{ext}")
}

#[tokio::test]
async fn a_folders_ignores_conflicts_versions_and_items_are_shown_and_changed_and_bad_input_refused() {
    let api = Api::start();
    api.send("POST", "/api/devices", json!({"id": OTHER, "name": "laptop"}));
    let root = api.t.path("docs");
    std::fs::create_dir(&root).unwrap();
    api.t.write("docs/doc.txt", b"mine");
    api.t.write("docs/junk.tmp", b"0123456789");
    let copy = conflict_copy("doc", ".txt", &OTHER[..7]);
    api.t.write(&format!("docs/{copy}"), b"theirs");
    let (status, _) = api.send("POST", "/api/folders", json!({"id": "docs", "path": root}));
    assert_eq!(status, 201);
    let local_bytes = || api.get("/api/status").1["folders"][0]["local"]["bytes"].as_u64().unwrap();
    wait_for(LIMIT, "the first scan", || async { (local_bytes() == 20).then_some(()) }).await;

    // Ignores: none yet; set, then the ignored file no longer counts; a bad line changes nothing.
    assert_eq!(api.get("/api/folders/docs/ignores"), (200, json!({"lines": []})));
    let (status, set) = api.send("PUT", "/api/folders/docs/ignores", json!({"lines": ["// junk", "*.tmp"]}));
    assert_eq!((status, &set), (200, &json!({"lines": ["// junk", "*.tmp"]})));
    assert_eq!(std::fs::read_to_string(root.join(".stignore")).unwrap(), "// junk\n*.tmp\n");
    assert_eq!(local_bytes(), 10, "the folder was rescanned with the new patterns");
    let ignores = "/api/folders/docs/ignores";
    let (status, bad) = api.send("PUT", ignores, json!({"lines": ["ok", "a["]}));
    assert_eq!(status, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("line 2 (\"a[\")"), "{bad}");
    assert_eq!(api.get(ignores).1, json!({"lines": ["// junk", "*.tmp"]}), "nothing written");
    let (status, bad) = api.send("PUT", ignores, json!({"patterns": []}));
    assert_eq!(status, 400, "{bad}");

    // The rescan interval and watching are folder settings.
    let (status, patched) =
        api.send("PATCH", "/api/folders/docs", json!({"rescan_interval_s": 0, "watch": false}));
    assert_eq!(status, 200, "{patched}");
    let (_, folders) = api.get("/api/folders");
    assert_eq!((&folders[0]["rescan_interval_s"], &folders[0]["watch"]), (&json!(0), &json!(false)));

    // The conflict copy, from the index, with both sides and the named device.
    let (status, conflicts) = api.get("/api/folders/docs/conflicts");
    assert_eq!(status, 200, "{conflicts}");
    let c = &conflicts[0];
    assert_eq!(
        (&c["path"], &c["conflict"], &c["device"], &c["device_name"]),
        (&json!("doc.txt"), &json!(copy), &json!(&OTHER[..7]), &json!("laptop")),
        "{conflicts}"
    );
    assert_eq!((&c["current"]["size"], &c["copy"]["size"]), (&json!(4), &json!(6)), "{conflicts}");
    assert!(c["copy"]["modified"].as_str().unwrap().ends_with('Z'), "{conflicts}");

    let resolve = "/api/folders/docs/conflicts/resolve";
    let refused = |body: Value, status: u16, want: &str| {
        let (got, answer) = api.send("POST", resolve, body.clone());
        let error = answer["error"].as_str().unwrap_or_else(|| panic!("no error for {body}: {answer}"));
        assert_eq!(got, status, "{body}: {error}");
        assert!(error.contains(want), "want {want:?} in {error:?}");
    };
    refused(json!({"conflict": "doc.txt", "keep": "copy"}), 400, "not a conflict copy");
    refused(json!({"conflict": format!("../{copy}"), "keep": "copy"}), 400, "leaves the folder");
    refused(json!({"conflict": format!("/etc/{copy}"), "keep": "copy"}), 400, "absolute");
    let outside = api.t.path("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join(&copy), b"elsewhere").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    refused(json!({"conflict": format!("link/{copy}"), "keep": "current"}), 400, "symbolic link");
    assert!(outside.join(&copy).exists(), "nothing outside the folder is touched");
    refused(json!({"conflict": conflict_copy("gone", "", &OTHER[..7]), "keep": "copy"}), 404, "no file");
    refused(json!({"conflict": copy, "keep": "both"}), 400, "unknown variant");
    api.refused(
        "POST",
        "/api/folders/nope/conflicts/resolve",
        json!({"conflict": copy, "keep": "copy"}),
        404,
        "no folder",
    );
    assert_eq!(std::fs::read(root.join("doc.txt")).unwrap(), b"mine", "nothing changed");

    let (status, done) = api.send("POST", resolve, json!({"conflict": copy, "keep": "copy"}));
    assert_eq!(status, 200, "{done}");
    assert_eq!(std::fs::read(root.join("doc.txt")).unwrap(), b"theirs");
    assert!(!root.join(&copy).exists());
    assert_eq!(api.get("/api/folders/docs/conflicts"), (200, json!([])), "the index knows it is gone");

    // The replaced content is a version; restoring it keeps the current one as a version.
    let (status, versions) = api.get("/api/folders/docs/versions");
    assert_eq!(status, 200, "{versions}");
    assert_eq!((&versions[0]["path"], &versions[0]["versions"][0]["size"]), (&json!("doc.txt"), &json!(4)));
    let version = versions[0]["versions"][0]["version"].as_str().unwrap().to_owned();
    let restore = "/api/folders/docs/versions/restore";
    for (body, status, want) in [
        (json!({"path": "../doc.txt", "version": version}), 400, "leaves the folder"),
        (json!({"path": "doc.txt", "version": "yesterday"}), 400, "is not a version"),
        (json!({"path": "doc.txt", "version": "20000101-000000"}), 404, "no version"),
        (json!({"path": ".stversions/x", "version": version}), 400, "not a synced file"),
    ] {
        let (got, answer) = api.send("POST", restore, body.clone());
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{body}: {answer}");
        assert!(error.contains(want), "want {want:?} in {error:?}");
    }
    assert_eq!(std::fs::read(root.join("doc.txt")).unwrap(), b"theirs", "nothing changed");
    let (status, done) = api.send("POST", restore, json!({"path": "doc.txt", "version": version}));
    assert_eq!(status, 200, "{done}");
    assert_eq!(std::fs::read(root.join("doc.txt")).unwrap(), b"mine");
    let (_, versions) = api.get("/api/folders/docs/versions");
    let sizes: Vec<&Value> = versions[0]["versions"].as_array().unwrap().iter().map(|v| &v["size"]).collect();
    assert_eq!(sizes, [&json!(6)], "{versions}");

    // Nothing is needed or failed in a folder shared with nobody; rates are there, and zero.
    assert_eq!(api.get("/api/folders/docs/needed"), (200, json!([])));
    assert_eq!(api.get("/api/folders/docs/errors"), (200, json!([])));
    let (_, status) = api.get("/api/status");
    assert_eq!(
        (&status["folders"][0]["rate_bps"], &status["folders"][0]["eta_s"]),
        (&json!(0), &Value::Null)
    );
    for route in ["ignores", "conflicts", "versions", "needed", "errors"] {
        let (status, answer) = api.get(&format!("/api/folders/nope/{route}"));
        assert_eq!(status, 404, "{route}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("no folder with ID \"nope\""), "{answer}");
    }
    api.refused("PUT", "/api/folders/nope/ignores", json!({"lines": []}), 404, "no folder");

    // A paused folder's patterns can be changed too (it scans everything when resumed).
    assert_eq!(api.send("PATCH", "/api/folders/docs", json!({"paused": true})).0, 200);
    assert_eq!(api.send("PUT", ignores, json!({"lines": ["*.bak"]})), (200, json!({"lines": ["*.bak"]})));
    assert_eq!(std::fs::read_to_string(root.join(".stignore")).unwrap(), "*.bak\n");
}

#[test]
fn events_stream_a_scan_as_it_happens() {
    let api = Api::start();
    let root = api.t.path("f");
    let (status, _) = api.send("POST", "/api/folders", json!({"id": "f", "path": root, "create": true}));
    assert_eq!(status, 201);
    let response = api.agent.get(api.url("/api/events")).header("X-API-Key", &api.key).call().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(response.into_body().into_reader()).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    api.t.write("f/new.txt", b"new");
    let (status, _) = api.send("POST", "/api/folders/f/scan", json!(null));
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).expect("a local-index-updated event in time");
        let Some(data) = line.strip_prefix("data:") else { continue };
        let event: Value = serde_json::from_str(data.trim()).unwrap();
        if event["type"] == "local-index-updated"
            && event["folder"] == "f"
            && event["changed"].as_u64() > Some(0)
        {
            break;
        }
    }
}

#[tokio::test]
async fn pending_devices_and_folder_offers_are_accepted_or_dismissed() {
    // b knows a and offers it folder "shared"; a does not know b yet.
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (ok(&a.peerfold(&["id"])).trim().to_owned(), ok(&b.peerfold(&["id"])).trim().to_owned());
    let pa = free_port();
    ok(&b.peerfold(&["device", "add", &ida, "--address", &format!("tcp://127.0.0.1:{pa}")]));
    let shared = b.path("shared");
    ok(&b.peerfold(&["folder", "add", shared.to_str().unwrap(), "--id", "shared", "--share", &ida]));
    let api = Api::start_on(a, &format!("tcp://127.0.0.1:{pa}"));
    let _b = Daemon::start(&b, &format!("tcp://127.0.0.1:{}", free_port()));

    let pending = wait_for(LIMIT, "b pending at a", || async {
        let (_, p) = api.get("/api/pending");
        (p["devices"][0]["device"] == idb.as_str()).then_some(p)
    })
    .await;
    assert_eq!(pending["folders"], json!([]), "{pending}");
    // The refusal is in the recent log the UI shows, and asking after its line gives later ones.
    let (_, log) = api.get("/api/log");
    let refused = log.as_array().unwrap().iter().find(|l| {
        l["message"].as_str().unwrap().contains("refused an unknown device; it is pending")
            && l["message"].as_str().unwrap().contains(&idb)
    });
    let refused = refused.unwrap_or_else(|| panic!("no refusal in {log}"));
    assert_eq!(refused["level"], "INFO", "{refused}");
    let seq = refused["seq"].as_u64().unwrap();
    let (_, after) = api.get(&format!("/api/log?since={seq}"));
    assert!(after.as_array().unwrap().iter().all(|l| l["seq"].as_u64().unwrap() > seq), "{after}");
    api.refused("POST", &format!("/api/pending/devices/{OTHER}/accept"), json!({}), 404, "not pending");
    api.refused("POST", &format!("/api/pending/devices/{OTHER}/dismiss"), json!(null), 404, "not pending");
    api.refused("POST", "/api/pending/devices/bad/accept", json!({}), 400, "is not a device ID");
    let (status, accepted) = api.send(
        "POST",
        &format!("/api/pending/devices/{idb}/accept"),
        json!({"name": "b", "addresses": ["dynamic"]}),
    );
    assert_eq!(status, 201, "{accepted}");

    // Once connected, b's offer of "shared" is pending at a.
    wait_for(LIMIT, "b's folder offer at a", || async {
        let (_, p) = api.get("/api/pending");
        (p["folders"][0]["folder"] == "shared").then_some(())
    })
    .await;
    let offer = "/api/pending/folders/shared/accept";
    let missing = api.t.path("missing");
    api.refused("POST", offer, json!({"device": idb}), 400, "give the path");
    api.refused("POST", offer, json!({"device": idb, "path": missing}), 400, "does not exist");
    api.refused("POST", offer, json!({"device": OTHER, "path": missing}), 404, "no pending offer");
    api.refused("POST", "/api/pending/folders/other/dismiss", json!(null), 404, "no offer");
    let (status, accepted) = api.send("POST", offer, json!({"device": idb, "path": missing, "create": true}));
    assert_eq!(status, 201, "{accepted}");
    let (_, folders) = api.get("/api/folders");
    assert_eq!((&folders[0]["id"], &folders[0]["devices"]), (&json!("shared"), &json!([idb])), "{folders}");
    assert_eq!(api.get("/api/pending").1["folders"], json!([]), "an accepted offer is no longer pending");
}

/// `POST /api/call` takes the service's typed requests, the same the REST routes make, and
/// answers the typed response, or the error with its kind and the kind's status.
#[test]
fn one_typed_call_answers_what_the_routes_answer() {
    let api = Api::start();
    let (status, answer) = api.send("POST", "/api/call", json!({"command": "devices"}));
    assert_eq!((status, &answer["type"]), (200, &json!("devices")), "{answer}");
    assert_eq!(answer["body"], api.get("/api/devices").1);
    let (status, answer) = api.send("POST", "/api/call", json!({"command": "needed", "folder": "nope"}));
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer, json!({"kind": "not-found", "error": "there is no folder with ID \"nope\""}));
    let (status, answer) = api.send("POST", "/api/call", json!({"command": "no-such-thing"}));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("bad request body"), "{answer}");
    let (_, doc) = api.get("/api/openapi.json");
    let call = &doc["paths"]["/api/call"]["post"];
    assert!(call["requestBody"].to_string().contains("#/components/schemas/Request"), "{call}");
    assert!(doc["components"]["schemas"]["Response"].is_object(), "the answers are typed");
}

#[test]
fn the_openapi_document_lists_every_route_and_every_listed_route_answers() {
    let api = Api::start();
    let (status, doc) = api.get("/api/openapi.json");
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<String> = Vec::new();
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys().filter(|m| *m != "parameters") {
            listed.push(format!("{} {path}", method.to_uppercase()));
            if path == "/api/events" {
                continue; // a stream that does not end; the events test reads it.
            }
            // Placeholders that name nothing: a route answers 400 or 404 with its own error,
            // a path the router does not know answers "there is no API route".
            let url = path.replace("{id}", "nothing").replace("{folder}", "nothing");
            let request = ureq::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(api.url(&url))
                .header("X-API-Key", &api.key)
                .header("Content-Type", "application/json")
                .body("{}".to_owned())
                .unwrap();
            let (status, answer) = Api::answer(api.agent.run(request).unwrap());
            assert_ne!(status, 405, "{method} {path}: {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(!error.contains("no API route"), "{method} {path} is documented but not routed: {error}");
        }
    }
    listed.sort();
    let mut want: Vec<&str> = vec![
        "GET /api/system",
        "GET /api/system/qr.svg",
        "GET /api/status",
        "GET /api/devices",
        "POST /api/devices",
        "PATCH /api/devices/{id}",
        "DELETE /api/devices/{id}",
        "GET /api/folders",
        "POST /api/folders",
        "PATCH /api/folders/{id}",
        "DELETE /api/folders/{id}",
        "POST /api/folders/{id}/scan",
        "POST /api/folders/{id}/confirm-deletes",
        "POST /api/folders/{id}/revert",
        "POST /api/config/edits",
        "GET /api/folders/{id}/ignores",
        "PUT /api/folders/{id}/ignores",
        "GET /api/folders/{id}/conflicts",
        "GET /api/conflicts",
        "POST /api/folders/{id}/conflicts/resolve",
        "GET /api/folders/{id}/versions",
        "POST /api/folders/{id}/versions/restore",
        "GET /api/folders/{id}/needed",
        "GET /api/folders/{id}/errors",
        "GET /api/folders/{id}/browse",
        "POST /api/folders/{id}/select",
        "POST /api/folders/{id}/deselect",
        "GET /api/pending",
        "GET /api/discovery",
        "POST /api/pending/devices/{id}/accept",
        "POST /api/pending/devices/{id}/dismiss",
        "POST /api/pending/folders/{folder}/accept",
        "POST /api/pending/folders/{folder}/dismiss",
        "GET /api/events",
        "GET /api/log",
        "GET /api/session",
        "POST /api/session",
        "DELETE /api/session",
        "POST /api/call",
    ];
    want.sort();
    assert_eq!(listed, want, "the document lists exactly the routes the tests cover");
    // With discovery off nothing is heard (the namespace tests see devices in it).
    assert_eq!(api.get("/api/discovery"), (200, json!({ "announced": [], "devices": [] })));
    let (status, answer) = api.get("/api/not-documented");
    assert_eq!(status, 404);
    assert!(answer["error"].as_str().unwrap().contains("no API route"), "{answer}");
}

/// `peerfold gui password --user USER`, the password on stdin.
fn set_password(t: &TestDir, user: &str, password: &str) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_peerfold"))
        .arg("--home")
        .arg(t.home())
        .args(["gui", "password", "--user", user])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

impl Api {
    /// A request with the given extra headers and no API key; the status, the answer and the
    /// `Set-Cookie` header.
    fn without_key(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let mut request = ureq::http::Request::builder().method(method).uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = request.header("Content-Type", "application/json").body(body).unwrap();
        let response = self.agent.run(request).unwrap();
        let cookie =
            response.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let (status, answer) = Self::answer(response);
        (status, answer, cookie)
    }
}

#[test]
fn a_browser_signs_in_with_the_password_or_the_key_and_out_again() {
    let t = TestDir::new();
    let out = set_password(&t, "alice", "correct horse");
    assert!(ok(&out).contains("alice"));
    let config = std::fs::read_to_string(t.home().join("config.toml")).unwrap();
    assert!(config.contains("password_hash = \"$argon2id$"), "{config}");
    assert!(!config.contains("correct horse"), "only the hash is stored");
    let api = Api::start_on(t, &format!("tcp://127.0.0.1:{}", free_port()));
    let err = crate::util::fails(&set_password(&api.t, "alice", "other"));
    assert!(err.contains("stop the daemon"), "{err}");

    let (status, info, _) = api.without_key("GET", "/api/session", &[], None);
    assert_eq!((status, info), (200, json!({"signed_in": false, "password_set": true, "user": "alice"})));
    let (status, _, _) = api.without_key("GET", "/api/system", &[], None);
    assert_eq!(status, 401, "no key and no session");

    let wrong = [
        json!({"user": "alice", "password": "wrong horse"}),
        json!({"user": "bob", "password": "correct horse"}),
        json!({"api_key": "not-the-key"}),
    ];
    for body in wrong {
        let (status, answer, cookie) = api.without_key("POST", "/api/session", &[], Some(body.clone()));
        assert_eq!(status, 401, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        let want =
            if body.get("api_key").is_some() { "the API key is not valid" } else { "password is wrong" };
        assert!(error.contains(want), "{error}");
        assert!(cookie.is_empty(), "{body}: no cookie when refused");
    }
    let (status, answer, _) = api.without_key("POST", "/api/session", &[], Some(json!({})));
    assert_eq!(status, 400, "{answer}");

    // The password opens a session; its cookie alone is then enough.
    let (status, _, set_cookie) = api.without_key(
        "POST",
        "/api/session",
        &[],
        Some(json!({"user": "alice", "password": "correct horse"})),
    );
    assert_eq!(status, 204);
    assert!(set_cookie.starts_with("peerfold_session="), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let with_cookie = [("Cookie", cookie.as_str())];
    let (status, system, _) = api.without_key("GET", "/api/system", &with_cookie, None);
    assert_eq!((status, system["id"].as_str()), (200, Some(api.id.as_str())));
    let (_, info, _) = api.without_key("GET", "/api/session", &with_cookie, None);
    assert_eq!(info["signed_in"], true);
    let (status, _, _) = api.without_key("POST", "/api/folders/nothing/scan", &with_cookie, None);
    assert_eq!(status, 404, "changes too, not just reads");

    // A cross-site page cannot ride on the cookie.
    let addr = &api.daemon.api;
    let (status, text) = raw(
        addr,
        &format!(
            "GET /api/system HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nOrigin: http://evil.example\r\n"
        ),
    );
    assert_eq!(status, 403, "{text}");
    let same_site = format!("http://{addr}");
    let (status, _, _) = api.without_key(
        "GET",
        "/api/system",
        &[("Cookie", cookie.as_str()), ("Origin", same_site.as_str())],
        None,
    );
    assert_eq!(status, 200);

    // Signed out, the cookie opens nothing.
    let (status, _, cleared) = api.without_key("DELETE", "/api/session", &with_cookie, None);
    assert_eq!(status, 204);
    assert!(cleared.starts_with("peerfold_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    let (status, answer, _) = api.without_key("GET", "/api/system", &with_cookie, None);
    assert_eq!(status, 401);
    assert!(answer["error"].as_str().unwrap().contains("sign in again"), "{answer}");
    let (_, info, _) = api.without_key("GET", "/api/session", &with_cookie, None);
    assert_eq!(info["signed_in"], false);

    // The key opens a session too (what the link of `peerfold gui url` does).
    let (status, _, set_cookie) =
        api.without_key("POST", "/api/session", &[], Some(json!({"api_key": api.key})));
    assert_eq!(status, 204);
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let (status, _, _) = api.without_key("GET", "/api/status", &[("Cookie", cookie.as_str())], None);
    assert_eq!(status, 200);
    let (status, _, _) =
        api.without_key("GET", "/api/status", &[("Cookie", "peerfold_session=made-up")], None);
    assert_eq!(status, 401);

    // Guessing is slowed down: after a run of failures, even the right password waits.
    let mut throttled = false;
    for _ in 0..12 {
        let (status, answer, _) =
            api.without_key("POST", "/api/session", &[], Some(json!({"user": "alice", "password": "guess"})));
        if status == 429 {
            assert!(answer["error"].as_str().unwrap().contains("too many failed sign-ins"), "{answer}");
            throttled = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(throttled, "failed sign-ins are limited");
    let (status, _, _) = api.without_key(
        "POST",
        "/api/session",
        &[],
        Some(json!({"user": "alice", "password": "correct horse"})),
    );
    assert_eq!(status, 429);
}

#[test]
fn without_a_password_only_the_key_signs_in_and_gui_url_prints_a_link_with_it() {
    let api = Api::start();
    let (status, answer, _) =
        api.without_key("POST", "/api/session", &[], Some(json!({"user": "admin", "password": "x"})));
    assert_eq!(status, 401);
    assert!(answer["error"].as_str().unwrap().contains("peerfold gui url"), "{answer}");
    let link = ok(&api.t.peerfold(&["gui", "url"]));
    assert_eq!(
        link.trim(),
        format!("http://{}/#key={}", api.daemon.api, api.key),
        "the running daemon's address"
    );
}

#[test]
fn gui_url_without_a_daemon_makes_the_key_the_daemon_will_use() {
    let t = TestDir::new();
    let link = ok(&t.peerfold(&["gui", "url"]));
    let config: toml::Table = std::fs::read_to_string(t.home().join("config.toml")).unwrap().parse().unwrap();
    let key = config["gui"]["api_key"].as_str().expect("a key, made and saved");
    assert_eq!(link.trim(), format!("http://127.0.0.1:8384/#key={key}"));
    assert_eq!(ok(&t.peerfold(&["gui", "url"])), link, "made once");
}

#[test]
fn the_web_ui_is_served_outside_api_without_a_key() {
    let api = Api::start();
    for path in ["/", "/folders/docs", "/settings"] {
        let (status, text) =
            raw(&api.daemon.api, &format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", api.daemon.api));
        assert_eq!(status, 200, "{path}: {text}");
        assert!(text.to_ascii_lowercase().contains("content-type: text/html"), "{text}");
        // The built UI, or (in a tree where it was never built) the page saying how to build it.
        assert!(text.contains("<div id=\"root\">") || text.contains("npm run build"), "{text}");
        assert!(text.to_ascii_lowercase().contains("x-frame-options: deny"), "{text}");
    }
    let (status, _) =
        raw(&api.daemon.api, &format!("GET /nothing.js HTTP/1.1\r\nHost: {}\r\n", api.daemon.api));
    assert_eq!(status, 404, "a missing file is not the app");
    let (status, _) = raw(&api.daemon.api, "GET / HTTP/1.1\r\nHost: evil.example\r\n");
    assert_eq!(status, 403, "the Host check still applies");
}

#[test]
fn serve_refuses_a_non_loopback_api_without_a_password() {
    let t = TestDir::new();
    let listen = format!("tcp://127.0.0.1:{}", free_port());
    let out = t.peerfold(&["serve", "--no-discovery", "--listen", &listen, "--gui-address", "0.0.0.0:0"]);
    let err = crate::util::fails(&out);
    assert!(err.contains("not a loopback address, without a GUI password"), "{err}");
}

#[test]
fn a_configuration_edit_applies_or_is_refused_with_nothing_changed() {
    let api = Api::start();
    let add = json!({"edit": "add-device", "id": OTHER, "name": "nas", "addresses": null});
    let (status, answer) = api.send("POST", "/api/config/edits", add);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["changed"], true, "{answer}");
    assert_eq!(api.get("/api/devices").1[0]["name"], "nas");
    api.refused(
        "POST",
        "/api/config/edits",
        json!({"edit": "add-device", "id": "nope"}),
        400,
        "bad request body",
    );
    api.refused("POST", "/api/config/edits", json!({"edit": "remove-folder", "id": "f"}), 400, "no folder");
    let share = json!({"edit": "share", "folder": "f", "device": OTHER});
    api.refused("POST", "/api/config/edits", share, 400, "no folder");
}

#[tokio::test]
async fn the_control_socket_serves_the_api_to_the_owner_without_a_key() {
    let api = Api::start();
    let socket = api.t.home().join("control.sock");
    // The socket comes up beside the TCP listener, not necessarily before it.
    wait_for(LIMIT, "the control socket", || async { socket.exists().then_some(()) }).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "only the owner may connect");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(b"GET /api/system HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&api.id), "{text}");
}

/// `[gui] tls = true`: the API answers over HTTPS with a certificate generated in the home, and
/// not over plain HTTP.
#[tokio::test]
async fn with_tls_on_the_api_answers_over_https_with_a_generated_certificate() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let t = TestDir::new();
    let id = ok(&t.peerfold(&["id"])).trim().to_owned();
    std::fs::write(t.home().join("config.toml"), "[gui]\ntls = true\n").unwrap();
    let daemon = Daemon::start(&t, &format!("tcp://127.0.0.1:{}", free_port()));
    assert!(daemon.log().contains(&format!("API on https://{}/api/", daemon.api)), "{}", daemon.log());
    let key_mode = std::fs::metadata(t.home().join("https-key.pem")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777, 0o600);
    let config: toml::Table = std::fs::read_to_string(t.home().join("config.toml")).unwrap().parse().unwrap();
    let key = config["gui"]["api_key"].as_str().unwrap().to_owned();

    // A client that trusts only the generated certificate, under the name a browser uses.
    let pem = std::fs::read(t.home().join("https-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(&pem) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&daemon.api).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await.unwrap();
    let port = daemon.api.rsplit(':').next().unwrap();
    let request = format!(
        "GET /api/system HTTP/1.1\r\nHost: localhost:{port}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(LIMIT, tls.read_to_string(&mut text)).await.unwrap().unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&id), "{text}");

    // Plain HTTP on the same port gets no HTTP answer.
    let (status, text) = raw(&daemon.api, &format!("GET /api/system HTTP/1.1\r\nHost: localhost:{port}\r\n"));
    assert_eq!(status, 0, "{text}");
}

fn pem_certs(pem: &[u8]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().unwrap()
}

/// The daemon's pid, from its home's lock file.
fn daemon_pid(t: &TestDir) -> u32 {
    std::fs::read_to_string(t.home().join("peerfold.lock")).unwrap().trim().parse().unwrap()
}

/// A field of `/proc/PID/status` (`Threads`, `VmHWM` in kB, …).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap();
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// Signs in with `password` as alice: the status and the `Retry-After` seconds, if sent.
fn sign_in_as_alice(agent: &ureq::Agent, api: &Api, password: &str) -> (u16, Value, Option<u64>) {
    let response = agent
        .post(api.url("/api/session"))
        .send_json(json!({"user": "alice", "password": password}))
        .unwrap();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    let (status, answer) = Api::answer(response);
    (status, answer, retry_after)
}

/// Failed sign-ins the brake lets through a minute (`MAX_FAILURES` in `src/api/session.rs`).
const BRAKE_ALLOWANCE: usize = 10;

/// Fifty browsers guess the password at the same moment, and keep guessing: the brake counts
/// each try before its Argon2 check runs, so no more than its allowance are ever checked (401)
/// and the rest are refused at once (429, with Retry-After), whatever the timing. Meanwhile,
/// and right after, the API key and the control socket work as ever, and the daemon's threads
/// and memory stay as they were (fifty Argon2 checks at once would take fifty threads and a
/// gigabyte).
#[test]
fn a_flood_of_wrong_passwords_is_braked_and_never_locks_out_the_key_or_the_control_socket() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    const FLOOD: usize = 50;
    let t = TestDir::new();
    ok(&set_password(&t, "alice", "correct horse"));
    let api = Api::start_on(t, &format!("tcp://127.0.0.1:{}", free_port()));
    let pid = daemon_pid(&api.t);
    let threads_before = proc_status(pid, "Threads");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(LIMIT))
        .build()
        .into();
    let started = std::time::Instant::now();
    let barrier = std::sync::Barrier::new(FLOOD + 1);
    let stop = AtomicBool::new(false);
    let (first_wave, flood, threads_during) = std::thread::scope(|s| {
        let guessers: Vec<_> = (0..FLOOD)
            .map(|i| {
                let (agent, api, barrier, stop) = (&agent, &api, &barrier, &stop);
                s.spawn(move || {
                    barrier.wait();
                    let mut answers = vec![sign_in_as_alice(agent, api, &format!("guess {i}"))];
                    while !stop.load(Relaxed) {
                        answers.push(sign_in_as_alice(agent, api, &format!("guess {i}")));
                    }
                    answers
                })
            })
            .collect();
        barrier.wait();
        // During the flood: the key and the control socket answer.
        let (status, system) = api.get("/api/system");
        assert_eq!((status, system["id"].as_str()), (200, Some(api.id.as_str())), "the key during the flood");
        let st: Value = serde_json::from_str(&ok(&api.t.peerfold(&["status", "--json"]))).unwrap();
        assert_eq!(st["running"], true, "the control socket during the flood: {st}");
        let threads_during = proc_status(pid, "Threads");
        stop.store(true, Relaxed);
        let answers: Vec<Vec<_>> = guessers.into_iter().map(|g| g.join().unwrap()).collect();
        let first_wave: Vec<_> = answers.iter().map(|a| a[0].clone()).collect();
        (first_wave, answers.into_iter().flatten().collect::<Vec<_>>(), threads_during)
    });
    let elapsed = started.elapsed();
    let threads_after = proc_status(pid, "Threads");

    let checked = |answers: &[(u16, Value, Option<u64>)]| answers.iter().filter(|a| a.0 == 401).count();
    assert!(
        checked(&first_wave) <= BRAKE_ALLOWANCE,
        "at most {BRAKE_ALLOWANCE} of {FLOOD} guesses at the same moment were checked, not {}",
        checked(&first_wave)
    );
    // The window is a minute; a slow run may have seen it slide.
    let allowance = BRAKE_ALLOWANCE * (1 + elapsed.as_secs() as usize / 60);
    assert!(
        checked(&flood) <= allowance,
        "at most {allowance} of {} guesses in {elapsed:?} were checked, not {}",
        flood.len(),
        checked(&flood)
    );

    // Argon2 takes 19 MiB and a blocking thread per check: a few at a time, not fifty.
    assert!(
        threads_during.max(threads_after) <= threads_before + 8,
        "threads: {threads_before} before, {threads_during} during, {threads_after} after the flood"
    );
    let peak_mb = proc_status(pid, "VmHWM") / 1024;
    assert!(peak_mb < 300, "the daemon's memory peaked at {peak_mb} MB");
    for (status, answer, retry_after) in &flood {
        match status {
            401 => assert!(answer["error"].as_str().unwrap().contains("password is wrong"), "{answer}"),
            429 => assert!(
                retry_after.is_some_and(|s| (1..=60).contains(&s)),
                "a refusal says when to come back: {retry_after:?} {answer}"
            ),
            _ => panic!("a guess is refused as wrong or as too many: {status} {answer}"),
        }
    }
    // Right after: once the brake is on, even the right password waits, and says how long; the
    // key and the control socket still work.
    let mut braked = None;
    for _ in 0..=BRAKE_ALLOWANCE {
        let (status, answer, retry_after) = sign_in_as_alice(&agent, &api, "one more guess");
        if status == 429 && answer["error"].as_str().unwrap().contains("too many failed sign-ins") {
            braked = retry_after;
            break;
        }
    }
    assert!(braked.is_some_and(|s| (1..=60).contains(&s)), "the brake engaged: {braked:?}");
    let (status, answer, retry_after) = sign_in_as_alice(&agent, &api, "correct horse");
    assert_eq!(status, 429, "{answer}");
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)), "{retry_after:?}");
    let (status, _) = api.get("/api/system");
    assert_eq!(status, 200, "the key right after the flood");
    let st: Value = serde_json::from_str(&ok(&api.t.peerfold(&["status", "--json"]))).unwrap();
    assert_eq!(st["running"], true, "the control socket right after the flood: {st}");
    // A session opened with the key is not braked either (the link of `peerfold gui url`).
    let (status, answer, _) = api.without_key("POST", "/api/session", &[], Some(json!({"api_key": api.key})));
    assert_eq!(status, 204, "signing in with the key right after the flood: {answer}");
}

/// Where `value` does not have the shape `schema` (an OpenAPI 3.1 schema in `doc`) gives it:
/// a wrong type, a missing required property, or a property the schema does not list. Enough
/// of JSON Schema for the document utoipa makes: `$ref`, `oneOf`, `allOf`, `type`, `enum`,
/// `properties`, `required`, `additionalProperties`, `items`.
fn mismatches(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return mismatches(doc, &doc["components"]["schemas"][name], value, &format!("{at} ({name})"));
    }
    if let Some(alternatives) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let misses: Vec<Vec<String>> =
            alternatives.iter().map(|alt| mismatches(doc, alt, value, at)).collect();
        if misses.iter().any(Vec::is_empty) {
            return Vec::new();
        }
        return vec![format!("{at}: {value} is none of {}", misses.concat().join("; "))];
    }
    if let Some(parts) = schema["allOf"].as_array() {
        // One object whose properties are all the parts' (as serde's flatten writes it).
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in parts {
            let part = match part["$ref"].as_str() {
                Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
                None => part,
            };
            for (name, property) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][name] = property.clone();
            }
            for name in part["required"].as_array().into_iter().flatten() {
                merged["required"].as_array_mut().unwrap().push(name.clone());
            }
        }
        return mismatches(doc, &merged, value, at);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => return vec![format!("{at}: the schema {schema} has no type")],
    };
    let is = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let number = is == "integer" && types.contains(&"number");
    if !(types.contains(&is) || number) {
        return vec![format!("{at}: {value} is not {types:?}")];
    }
    if let Some(allowed) = schema["enum"].as_array().filter(|_| !value.is_null())
        && !allowed.contains(value)
    {
        return vec![format!("{at}: {value} is not one of {allowed:?}")];
    }
    let mut found = Vec::new();
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                found.extend(mismatches(doc, &schema["items"], item, &format!("{at}[{i}]")));
            }
        }
        Value::Object(fields) => {
            for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    found.push(format!("{at}: no {name:?} in {value}"));
                }
            }
            for (name, field) in fields {
                let at = format!("{at}.{name}");
                match (schema["properties"].get(name), schema.get("additionalProperties")) {
                    (Some(property), _) => found.extend(mismatches(doc, property, field, &at)),
                    (None, Some(values)) if values.is_object() => {
                        found.extend(mismatches(doc, values, field, &at));
                    }
                    _ => found.push(format!("{at}: not in the document")),
                }
            }
        }
        _ => {}
    }
    found
}

/// The web UI's types are generated from the OpenAPI document, so the document must say what
/// the API really sends and accepts: every call here (bodies as the UI sends them) is checked
/// against the document, request and answer.
#[tokio::test]
async fn every_answer_has_the_shape_the_openapi_document_gives_it() {
    let api = Api::start();
    let (_, doc) = api.get("/api/openapi.json");
    let call = |method: &str, route: &str, path: &str, body: Option<Value>| -> Value {
        let operation = &doc["paths"][route][method.to_lowercase()];
        assert!(operation.is_object(), "{method} {route} is not in the document");
        let (status, answer) = match &body {
            None if method == "GET" => api.get(path),
            None => api.send(method, path, json!(null)),
            Some(body) => {
                let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
                let wrong = mismatches(&doc, schema, body, &format!("{method} {route} request"));
                assert!(wrong.is_empty(), "{}", wrong.join("\n"));
                api.send(method, path, body.clone())
            }
        };
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        let schema = &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
        let wrong = mismatches(&doc, schema, &answer, &format!("{method} {route} {status}"));
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        answer
    };

    call("POST", "/api/devices", "/api/devices", Some(json!({"id": OTHER, "name": "laptop"})));
    let root = api.t.path("docs");
    std::fs::create_dir(&root).unwrap();
    api.t.write("docs/doc.txt", b"mine");
    let copy = conflict_copy("doc", ".txt", &OTHER[..7]);
    api.t.write(&format!("docs/{copy}"), b"theirs");
    let folder = json!({"id": "docs", "path": root, "devices": [OTHER], "versioning": {"type": "trashcan", "keep_days": 7}});
    call("POST", "/api/folders", "/api/folders", Some(folder));
    let scanned = || api.get("/api/status").1["folders"][0]["local"]["files"].as_u64() == Some(2);
    wait_for(LIMIT, "the first scan", || async { scanned().then_some(()) }).await;

    let folder_route = |tail: &str| format!("/api/folders/{{id}}{tail}");
    let in_folder = |tail: &str| format!("/api/folders/docs{tail}");
    for route in ["/api/system", "/api/session", "/api/status", "/api/devices", "/api/folders"] {
        call("GET", route, route, None);
    }
    for route in ["/api/pending", "/api/discovery", "/api/conflicts", "/api/log"] {
        call("GET", route, route, None);
    }
    call("POST", &folder_route("/scan"), &in_folder("/scan"), None);
    let conflicts = call("GET", &folder_route("/conflicts"), &in_folder("/conflicts"), None);
    assert_eq!(conflicts.as_array().map(Vec::len), Some(1), "{conflicts}");
    let resolve = json!({"conflict": copy, "keep": "copy"});
    call("POST", &folder_route("/conflicts/resolve"), &in_folder("/conflicts/resolve"), Some(resolve));
    let versions = call("GET", &folder_route("/versions"), &in_folder("/versions"), None);
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "the replaced file was kept: {versions}");
    for tail in ["/needed", "/errors", "/ignores"] {
        call("GET", &folder_route(tail), &in_folder(tail), None);
    }
    call("PUT", &folder_route("/ignores"), &in_folder("/ignores"), Some(json!({"lines": ["*.tmp"]})));
    // Selective sync: the tree, a deselect that keeps the local copy (and says so), a select.
    // The resolved conflict copy's deletion is a name of the index too, not listed: a page of
    // one is empty, and says where the next starts.
    let page = call("GET", &folder_route("/browse"), &in_folder("/browse?prefix=&limit=1"), None);
    assert_eq!((page["items"].as_array().map(Vec::len), page["next"].is_string()), (Some(0), true), "{page}");
    let page = call("GET", &folder_route("/browse"), &in_folder("/browse?prefix="), None);
    assert_eq!(page["items"][0]["name"], "doc.txt", "{page}");
    assert_eq!(page["items"][0]["selected"], true, "{page}");
    let deselect = json!({"paths": ["doc.txt"], "delete_local": false});
    let answer = call("POST", &folder_route("/deselect"), &in_folder("/deselect"), Some(deselect));
    assert!(answer["message"].as_str().unwrap().contains("is kept"), "{answer}");
    assert!(api.t.path("docs/doc.txt").exists());
    let page = call("GET", &folder_route("/browse"), &in_folder("/browse"), None);
    assert_eq!(page["items"][0]["selected"], false, "{page}");
    let ignores = api.get("/api/folders/docs/ignores").1;
    assert_eq!(
        ignores["lines"],
        json!([
            "*.tmp",
            "// peerfold selective sync: begin (managed by `peerfold folder select`/`deselect`)",
            "/doc.txt",
            "// peerfold selective sync: end"
        ])
    );
    call("POST", &folder_route("/select"), &in_folder("/select"), Some(json!({"paths": ["doc.txt"]})));
    assert_eq!(api.get("/api/folders/docs/ignores").1["lines"], json!(["*.tmp"]));
    let patch =
        json!({"label": "Docs", "versioning": {"type": "none"}, "rescan_interval_s": 600, "watch": false});
    call("PATCH", &folder_route(""), &in_folder(""), Some(patch));
    let device = format!("/api/devices/{OTHER}");
    call("PATCH", "/api/devices/{id}", &device, Some(json!({"paused": true, "addresses": ["dynamic"]})));
    call("POST", "/api/config/edits", "/api/config/edits", Some(json!({"edit": "set-name", "name": "desk"})));
    let share = json!({"edit": "unshare", "folder": "docs", "device": OTHER});
    call("POST", "/api/config/edits", "/api/config/edits", Some(share));
    // Status again, now with a paused device and a relabelled folder.
    call("GET", "/api/status", "/api/status", None);
    call("DELETE", "/api/devices/{id}", &device, None);
    call("DELETE", &folder_route(""), &in_folder(""), None);
}
