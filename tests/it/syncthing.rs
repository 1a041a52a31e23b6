//! The interop harness's other half: a real Syncthing (Debian's 1.19.2) in a temporary home,
//! configured by writing its `config.xml` and driven through its REST API on loopback, with
//! everything that reaches beyond loopback turned off (discovery, relays, NAT traversal,
//! usage reporting, upgrades). It is stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{free_port, syncthing};

const API_KEY: &str = "peerfold-interop-test-key";
const LIMIT: Duration = Duration::from_secs(60);

/// A folder in Syncthing's configuration.
pub struct StFolder<'a> {
    pub id: &'a str,
    pub path: &'a Path,
    /// `sendreceive`, `sendonly` or `receiveonly`.
    pub kind: &'a str,
    /// The devices it is shared with (besides Syncthing itself).
    pub devices: &'a [&'a str],
}

/// A device in Syncthing's configuration.
pub struct StDevice<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub address: &'a str,
}

pub struct Syncthing {
    pub home: PathBuf,
    pub id: String,
    /// Where it listens for devices: `tcp://127.0.0.1:P` or `quic://127.0.0.1:P`.
    pub listen: String,
    gui: String,
    child: Option<Child>,
    log: PathBuf,
    /// Local discovery on (only for a Syncthing inside a test's own network namespace).
    pub local_announce: bool,
    /// Relays on (only with a `relay://` listen address of a relay the test runs on loopback).
    pub relays: bool,
}

impl Syncthing {
    /// A new identity in `home`, listening with `scheme` (tcp or quic) on a free port.
    pub fn new(home: PathBuf, scheme: &str) -> Self {
        let out = Command::new(syncthing())
            .args(["generate", "--no-default-folder"])
            .arg(format!("--home={}", home.display()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let id = text
            .lines()
            .find_map(|l| l.split("Device ID: ").nth(1))
            .unwrap_or_else(|| panic!("no device ID in {text}"))
            .trim()
            .to_owned();
        Self {
            log: home.join("syncthing.log"),
            home,
            id,
            listen: format!("{scheme}://127.0.0.1:{}", free_port()),
            gui: format!("127.0.0.1:{}", free_port()),
            child: None,
            local_announce: false,
            relays: false,
        }
    }

    /// Writes its `config.xml` (replacing what was there) with these folders and devices.
    pub fn configure(&self, folders: &[StFolder<'_>], devices: &[StDevice<'_>]) {
        let mut xml = String::from("<configuration version=\"36\">\n");
        for f in folders {
            xml += &format!(
                "  <folder id=\"{}\" label=\"{}\" path=\"{}\" type=\"{}\" rescanIntervalS=\"3600\" \
                 fsWatcherEnabled=\"false\">\n    <device id=\"{}\"></device>\n",
                f.id,
                f.id,
                f.path.display(),
                f.kind,
                self.id
            );
            for d in f.devices {
                xml += &format!("    <device id=\"{d}\"></device>\n");
            }
            xml += "  </folder>\n";
        }
        xml += &format!(
            "  <device id=\"{}\" name=\"st\" compression=\"metadata\"><address>dynamic</address></device>\n",
            self.id
        );
        for d in devices {
            xml += &format!(
                "  <device id=\"{}\" name=\"{}\" compression=\"metadata\"><address>{}</address></device>\n",
                d.id, d.name, d.address
            );
        }
        xml += &format!(
            "  <gui enabled=\"true\" tls=\"false\"><address>{}</address><apikey>{API_KEY}</apikey></gui>\n\
             <options>\n    <listenAddress>{}</listenAddress>\n    \
             <globalAnnounceEnabled>false</globalAnnounceEnabled>\n    \
             <localAnnounceEnabled>{}</localAnnounceEnabled>\n    \
             <relaysEnabled>{}</relaysEnabled>\n    <natEnabled>false</natEnabled>\n    \
             <startBrowser>false</startBrowser>\n    <urAccepted>-1</urAccepted>\n    \
             <autoUpgradeIntervalH>0</autoUpgradeIntervalH>\n    \
             <crashReportingEnabled>false</crashReportingEnabled>\n    \
             <stunKeepaliveStartS>0</stunKeepaliveStartS>\n    \
             <announceLANAddresses>false</announceLANAddresses>\n    \
             <reconnectionIntervalS>1</reconnectionIntervalS>\n  </options>\n</configuration>\n",
            self.gui, self.listen, self.local_announce, self.relays
        );
        std::fs::write(self.home.join("config.xml"), xml).unwrap();
    }

    /// Starts `syncthing serve` and waits until its REST API answers. The API's port was free
    /// when picked, but another test's socket can take it before Syncthing binds it; then
    /// Syncthing exits and is started again on a new port (at most three times).
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        for _ in 0..3 {
            let logged_before = self.log().len();
            self.spawn();
            let deadline = tokio::time::Instant::now() + LIMIT;
            while self.try_get("/rest/system/ping").await.is_none_or(|v| v["ping"] != "pong") {
                let exited = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
                if exited && self.log()[logged_before..].contains("Failed starting API") {
                    self.child = None;
                    self.gui = format!("127.0.0.1:{}", free_port());
                    break;
                }
                assert!(
                    !exited && tokio::time::Instant::now() < deadline,
                    "Syncthing did not start:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if self.child.is_some() {
                return;
            }
        }
        panic!("Syncthing found no free port for its API:\n{}", self.log());
    }

    fn spawn(&mut self) {
        self.spawn_in(Command::new(syncthing()));
    }

    /// Starts `syncthing serve` through `cmd` (`syncthing`, or `ip netns exec NS syncthing`
    /// where the test cannot reach its REST API) without waiting for it.
    pub fn spawn_in(&mut self, mut cmd: Command) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = cmd
            .args(["serve", "--no-browser", "--no-restart", "--no-upgrade"])
            .arg(format!("--home={}", self.home.display()))
            .arg(format!("--gui-address={}", self.gui))
            .env("STNOUPGRADE", "1")
            .env("STNORESTART", "1")
            // Without it Syncthing 1.19 runs as a monitor process and a child in a process group
            // of its own (despite --no-restart): `kill` would end the monitor and leave the child
            // running after the test, holding CPU and ports.
            .env("STMONITORED", "1")
            .env("STTRACE", "")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Kills it (SIGKILL, as a crash or a pulled plug would) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path`, `None` if it fails (as it may while Syncthing starts its folders).
    pub async fn try_get(&self, path: &str) -> Option<Value> {
        let url = format!("http://{}{path}", self.gui);
        tokio::task::spawn_blocking(move || {
            let mut response = ureq::get(&url).header("X-API-Key", API_KEY).call().ok()?;
            response.body_mut().read_json::<Value>().ok()
        })
        .await
        .unwrap()
    }

    /// `GET path`, which must succeed.
    pub async fn get(&self, path: &str) -> Value {
        self.try_get(path).await.unwrap_or_else(|| panic!("GET {path} failed"))
    }

    /// `method path` with a JSON body; returns the status code.
    pub async fn send(&self, method: &str, path: &str, body: Value) -> u16 {
        let (url, method) = (format!("http://{}{path}", self.gui), method.to_owned());
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let request = http_request(&method, &url, &body);
            agent.run(request).map(|r| r.status().as_u16()).unwrap_or(0)
        })
        .await
        .unwrap()
    }

    /// Scans `folder` now (returns when the scan is done).
    pub async fn scan(&self, folder: &str) {
        let code = self.send("POST", &format!("/rest/db/scan?folder={folder}"), Value::Null).await;
        assert_eq!(code, 200, "scan of {folder}");
    }

    /// `/rest/db/status` of `folder`.
    pub async fn db_status(&self, folder: &str) -> Value {
        self.get(&format!("/rest/db/status?folder={folder}")).await
    }

    /// Whether it is connected to `device`.
    pub async fn connected_to(&self, device: &str) -> bool {
        self.try_get("/rest/system/connections")
            .await
            .is_some_and(|v| v["connections"][device]["connected"] == true)
    }
}

fn http_request(method: &str, url: &str, body: &Value) -> ureq::http::Request<Vec<u8>> {
    let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(body).unwrap() };
    ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("X-API-Key", API_KEY)
        .header("Content-Type", "application/json")
        .body(bytes)
        .unwrap()
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        self.kill();
        // A test that failed shows what Syncthing said (the last lines: its log is long).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- Syncthing {} ({}), last lines of its log:\n{}",
                self.id,
                self.listen,
                tail.join("\n")
            );
        }
    }
}
