//! The harness: temporary homes and folders, running the built binary, bounded waits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A temporary directory holding a Peerfold home (`home/`) and folders beside it.
pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating its directories.
    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
        p
    }

    /// Reruns `peerfold --home <home> args…` until the JSON it prints satisfies `f`, for at
    /// most `limit`, and returns that JSON.
    pub async fn json_until(
        &self,
        limit: Duration,
        args: &[&str],
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(limit, what, || async {
            let v: serde_json::Value = serde_json::from_slice(&self.peerfold(args).stdout).ok()?;
            f(&v).then_some(v)
        })
        .await
    }

    /// Runs `peerfold --home <home> args…`.
    pub fn peerfold(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerfold"));
        cmd.arg("--home").arg(self.home()).args(args).env_remove("RUST_LOG");
        cmd.output().expect("run peerfold")
    }
}

/// Stdout of a successful run; panics with stderr otherwise.
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a failed run; panics if it succeeded.
pub fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "unexpected success: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real Syncthing binary (Debian's `syncthing` package), which `.ci/run` installs.
pub fn syncthing() -> &'static Path {
    let p = Path::new("/usr/bin/syncthing");
    assert!(p.exists(), "these tests need a real Syncthing: apt-get install syncthing");
    p
}

/// Logs to the test's output when `RUST_LOG` is set (shown for failing tests).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    }
}

/// A port that was free a moment ago over both TCP and UDP, so that it suits either transport
/// (daemons are told it explicitly, as peers must know it).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Below the kernel's ephemeral range (32768–60999 here), which every `bind(:0)` and every
    // outgoing connection draws from: a port picked there could be taken by another test's
    // connection before the daemon it is meant for binds it, and that daemon then fails to
    // start. Here only another `free_port` could take it, and each call moves on.
    const FIRST: u32 = 10_000;
    const COUNT: u32 = 20_000;
    // Where this run starts: differs from run to run, so that ports a previous run left in
    // TIME_WAIT are not the first tried.
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (std::process::id().wrapping_mul(2_654_435_761) ^ nanos) % COUNT
    });
    loop {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// Sets these keys under `[options]` in the home's `config.toml`.
pub fn set_options<const N: usize>(t: &TestDir, options: [(&str, toml::Value); N]) {
    let path = t.home().join("config.toml");
    // A home that has not been used yet has no file; the daemon fills in the rest.
    let mut config: toml::Table = std::fs::read_to_string(&path).unwrap_or_default().parse().unwrap();
    let table = config.entry("options").or_insert_with(|| toml::Table::new().into());
    for (key, value) in options {
        table.as_table_mut().unwrap().insert(key.into(), value);
    }
    std::fs::create_dir_all(t.home()).unwrap();
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

/// A `peerfold serve` process on a test home; killed when dropped.
pub struct Daemon {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    /// Where its control API listens (`127.0.0.1:PORT`).
    pub api: String,
}

impl Daemon {
    /// Starts the daemon listening on `listen` and waits until it does.
    pub fn start(t: &TestDir, listen: &str) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerfold"));
        cmd.arg("--home")
            .arg(t.home())
            // A port of its own for the API, so daemons in parallel tests never collide; no
            // discovery, so nothing leaves loopback.
            .args(["serve", "--no-discovery", "--listen", listen, "--gui-address", "127.0.0.1:0"]);
        Self::spawn(cmd)
    }

    /// Starts `cmd` (a `peerfold serve`, perhaps wrapped in `ip netns exec`) and waits until it
    /// listens.
    pub fn spawn(mut cmd: Command) -> Self {
        use std::io::BufRead as _;
        let mut child = cmd.env("RUST_LOG", "info").stderr(std::process::Stdio::piped()).spawn().unwrap();
        // Wait until it listens (it prints the bound addresses), then keep the log.
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for line in lines.by_ref() {
            let line = line.unwrap();
            let listening = line.starts_with("Listening on");
            log.lock().unwrap().push_str(&(line + "\n"));
            if listening {
                break;
            }
        }
        // The guard must be gone before the panic below reads the log again (it would wait
        // for itself forever).
        let api = log.lock().unwrap().lines().find_map(|l| {
            let url = l.strip_prefix("API on ")?;
            url.strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))?
                .strip_suffix("/api/")
                .map(str::to_owned)
        });
        let api = api.unwrap_or_else(|| panic!("no API address in the log:\n{}", log.lock().unwrap()));
        let keep = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Self { child, log, api }
    }

    /// The process ID, to read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log as it keeps growing, to read after the daemon is gone.
    pub fn log_handle(&self) -> std::sync::Arc<std::sync::Mutex<String>> {
        std::sync::Arc::clone(&self.log)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, as systemd stops a service, and waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.wait().unwrap()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic bytes that do not compress (xorshift), `len` of them from `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A new device in a temporary home: its identity, and a listener bound to a random loopback
/// port over `transport` with the address it got.
pub async fn bound_device(
    transport: &str,
) -> (TestDir, peerfold::identity::Identity, peerfold::net::Net, peerfold::net::Address) {
    use peerfold::net::{Address, Net, TlsIdentity};
    init_logging();
    let t = TestDir::new();
    let identity = peerfold::identity::Identity::load_or_generate(&t.home()).unwrap();
    let listen: Address = format!("{transport}://127.0.0.1:0").parse().unwrap();
    let net = Net::bind(TlsIdentity::new(&identity).unwrap(), &[listen]).await.unwrap();
    let addr = net.local_addresses()[0].clone();
    (t, identity, net, addr)
}

/// Runs `ip` with `args` (network namespaces, links, addresses, routes); panics with what it
/// said if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Stops a test that builds network namespaces when it does not run as root.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    assert!(root, "this test creates network namespaces with `ip netns` and must run as root");
}
