//! Discovery across hosts: network namespaces this test creates, joined by a veth pair, with
//! no route anywhere else. Daemons there run with discovery on and know each other only as
//! `dynamic`; a Syncthing 1.19.2 with local discovery on stands in for one side. Needs root
//! (`ip netns`); CI runs as root, and without it these tests fail saying so.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::syncthing::{StDevice, StFolder, Syncthing};
use crate::util::{Daemon, TestDir, ip, ok, set_options, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// Two network namespaces joined by a veth pair (`10.77.0.1/24` and `10.77.0.2/24`), each with
/// loopback up; deleted when dropped, also when the test fails.
struct Lan {
    names: [String; 2],
}

impl Lan {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        crate::util::require_root();
        let tag = format!("pf{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let names = [format!("{tag}a"), format!("{tag}b")];
        // Constructed before the first `ip` call so that Drop cleans up whatever was made.
        let lan = Self { names };
        let [a, b] = &lan.names;
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        for (ns, addr) in [(a, "10.77.0.1/24"), (b, "10.77.0.2/24")] {
            ip(&["link", "set", ns, "netns", ns]);
            ip(&["-n", ns, "addr", "add", addr, "broadcast", "10.77.0.255", "dev", ns]);
            ip(&["-n", ns, "link", "set", ns, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// `program` to run inside namespace `i`.
    fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i]]).arg(program);
        cmd
    }

    /// `peerfold serve` in namespace `i` with local discovery on (and the DHT and port mapping
    /// off: they have nothing to reach here), listening on every address there.
    fn daemon(&self, i: usize, t: &TestDir) -> Daemon {
        set_options(t, [("global_discovery", false.into()), ("port_mapping", false.into())]);
        let mut cmd = self.command(i, std::path::Path::new(env!("CARGO_BIN_EXE_peerfold")));
        cmd.arg("--home").arg(t.home()).args([
            "serve",
            "--listen",
            "tcp://0.0.0.0:22000,quic://0.0.0.0:22000",
            "--gui-address",
            "127.0.0.1:0",
        ]);
        Daemon::spawn(cmd)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.names {
            // Deleting a namespace deletes the veth end in it, and with it the pair.
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn id_of(t: &TestDir) -> String {
    ok(&t.peerfold(&["id"])).trim().to_owned()
}

async fn file_is(path: std::path::PathBuf, want: &[u8]) {
    wait_for(LIMIT, "the file to arrive", || {
        let path = path.clone();
        async move { (std::fs::read(&path).ok()? == want).then_some(()) }
    })
    .await;
}

/// `status --json`'s entry for the one configured device, once it is connected.
async fn connected(t: &TestDir) -> serde_json::Value {
    wait_for(LIMIT, "the device to be connected", || async {
        let v: serde_json::Value = serde_json::from_slice(&t.peerfold(&["status", "--json"]).stdout).ok()?;
        let d = v["devices"][0].clone();
        (d["connected"] == true).then_some(d)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_a_lan_find_each_other_and_sync() {
    let lan = Lan::new();
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (id_of(&a), id_of(&b));
    ok(&a.peerfold(&["device", "add", &idb, "--name", "b"]));
    ok(&b.peerfold(&["device", "add", &ida, "--name", "a"]));
    for (t, other) in [(&a, &idb), (&b, &ida)] {
        ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f", "--share", other]));
    }
    let config = std::fs::read_to_string(a.home().join("config.toml")).unwrap();
    assert!(config.contains("addresses = [\"dynamic\"]"), "{config}");
    a.write("f/hello.txt", b"found you");
    let (_da, _db) = (lan.daemon(0, &a), lan.daemon(1, &b));
    file_is(b.path("f/hello.txt"), b"found you").await;
    let device = connected(&a).await;
    assert!(["10.77.0.2:22000"].contains(&device["address"].as_str().unwrap_or_default()), "{device}");
    // One side dialled the other at an address it heard on the LAN.
    let other = connected(&b).await;
    let found = [&device["found"], &other["found"]];
    assert!(found.contains(&&serde_json::json!("lan")), "{device} {other}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_heard_on_the_lan_is_a_candidate_until_added() {
    let lan = Lan::new();
    let (a, b) = (TestDir::new(), TestDir::new());
    let idb = id_of(&b);
    let (_da, _db) = (lan.daemon(0, &a), lan.daemon(1, &b));
    let seen = wait_for(LIMIT, "b among a's candidates", || async {
        let out = a.peerfold(&["device", "candidates", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.as_array()?.iter().find(|s| s["device"] == idb.as_str()).cloned()
    })
    .await;
    assert_eq!(seen["source"], "lan", "{seen}");
    assert!(seen["addresses"].as_array().unwrap().contains(&"tcp://10.77.0.2:22000".into()), "{seen}");
    ok(&a.peerfold(&["device", "add", &idb]));
    let after = ok(&a.peerfold(&["device", "candidates"]));
    assert!(!after.contains(&idb), "{after}");
}

/// A reaches B first over QUIC (its configured address, tried first); then the TCP address B
/// announces on the LAN ranks better, and that connection replaces the QUIC one. B knows A only
/// by a wrong address, so every connection is one A dialled.
#[tokio::test(flavor = "multi_thread")]
async fn a_better_connection_replaces_a_worse_one() {
    let lan = Lan::new();
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (id_of(&a), id_of(&b));
    ok(&a.peerfold(&["device", "add", &idb, "--address", "quic://10.77.0.2:22000", "--address", "dynamic"]));
    ok(&b.peerfold(&["device", "add", &ida, "--address", "tcp://10.77.0.1:1"]));
    let (da, _db) = (lan.daemon(0, &a), lan.daemon(1, &b));
    let device = wait_for(LIMIT, "a TCP connection to replace the QUIC one", || async {
        let v: serde_json::Value = serde_json::from_slice(&a.peerfold(&["status", "--json"]).stdout).ok()?;
        let d = v["devices"][0].clone();
        (d["transport"] == "tcp").then_some(d)
    })
    .await;
    assert_eq!(device["found"], "lan", "{device}");
    let first_quic = da.log().lines().any(|l| l.contains(" connected ") && l.ends_with("quic"));
    assert!(first_quic, "the first connection was QUIC:\n{}", da.log());
}

/// Syncthing in namespace 0, Peerfold in namespace 1; each knows the other only by a wrong
/// address (the right host, a closed port), so the one connection that can work is the one
/// dialled at the address heard on the LAN.
async fn with_syncthing(syncthing_dials: bool) {
    let lan = Lan::new();
    let (pf, st_home) = (TestDir::new(), TestDir::new());
    let pf_id = id_of(&pf);
    let mut st = Syncthing::new(st_home.path("st"), "tcp");
    st.listen = String::from("tcp://0.0.0.0:22000");
    st.local_announce = true;
    let st_folder = st_home.path("st-f");
    std::fs::create_dir_all(&st_folder).unwrap();
    std::fs::write(st_folder.join("from-syncthing.txt"), b"hello from syncthing").unwrap();
    let pf_address = if syncthing_dials { "dynamic" } else { "tcp://10.77.0.2:1" };
    st.configure(
        &[StFolder { id: "f", path: &st_folder, kind: "sendreceive", devices: &[&pf_id] }],
        &[StDevice { id: &pf_id, name: "peerfold", address: pf_address }],
    );
    let st_address = if syncthing_dials { "tcp://10.77.0.1:1" } else { "dynamic" };
    ok(&pf.peerfold(&["device", "add", &st.id, "--name", "st", "--address", st_address]));
    ok(&pf.peerfold(&["folder", "add", pf.path("f").to_str().unwrap(), "--id", "f", "--share", &st.id]));
    pf.write("f/from-peerfold.txt", b"hello from peerfold");

    st.spawn_in(lan.command(0, crate::util::syncthing()));
    let _pf = lan.daemon(1, &pf);
    file_is(pf.path("f/from-syncthing.txt"), b"hello from syncthing").await;
    file_is(st_folder.join("from-peerfold.txt"), b"hello from peerfold").await;
    let device = connected(&pf).await;
    if syncthing_dials {
        assert!(device["found"].is_null(), "Syncthing dialled us: {device}");
    } else {
        assert_eq!(device["found"], "lan", "{device}");
        assert_eq!(device["address"], "10.77.0.1:22000", "{device}");
    }
    drop(st);
}

#[tokio::test(flavor = "multi_thread")]
async fn peerfold_finds_syncthing_on_the_lan() {
    with_syncthing(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syncthing_finds_peerfold_on_the_lan() {
    with_syncthing(true).await;
}
