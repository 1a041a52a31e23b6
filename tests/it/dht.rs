//! Global discovery over a DHT of our own: several `mainline` nodes on loopback, bootstrapping
//! from each other, and two daemons that join it and know each other only as `dynamic`, with
//! local discovery and port mapping off (nothing leaves loopback).

use std::process::Command;
use std::time::Duration;

use crate::util::{Daemon, TestDir, free_port, ok, set_options, wait_for};

const LIMIT: Duration = Duration::from_secs(90);

/// Sets `[options]` so that the daemon's only discovery is the DHT through `bootstrap`.
fn dht_only(t: &TestDir, bootstrap: &[String]) {
    set_options(
        t,
        [
            ("discovery", true.into()),
            ("local_discovery", false.into()),
            ("port_mapping", false.into()),
            ("dht_bootstrap", bootstrap.to_vec().into()),
            // Our own (silent) STUN server, so that the default public ones are not asked; the
            // daemons listen on TCP only, so there is no QUIC socket to ask from anyway.
            ("stun", vec![toml::Value::from("127.0.0.1:9")].into()),
        ],
    );
}

fn daemon(t: &TestDir, listen: &str) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerfold"));
    cmd.arg("--home").arg(t.home()).args(["serve", "--listen", listen, "--gui-address", "127.0.0.1:0"]);
    Daemon::spawn(cmd)
}

#[tokio::test(flavor = "multi_thread")]
async fn daemons_announce_look_up_connect_and_sync_over_a_local_dht() {
    let testnet =
        tokio::task::spawn_blocking(|| mainline::Testnet::builder(5).build().unwrap()).await.unwrap();
    assert!(testnet.bootstrap.iter().all(|n| n.starts_with("127.0.0.1:")), "{:?}", testnet.bootstrap);
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (ok(&a.peerfold(&["id"])).trim().to_owned(), ok(&b.peerfold(&["id"])).trim().to_owned());
    ok(&a.peerfold(&["device", "add", &idb, "--name", "b"]));
    ok(&b.peerfold(&["device", "add", &ida, "--name", "a"]));
    for (t, other) in [(&a, &idb), (&b, &ida)] {
        ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f", "--share", other]));
        dht_only(t, &testnet.bootstrap);
    }
    a.write("f/over-the-dht.txt", b"no server needed");
    let pb = free_port();
    let (_da, _db) = (
        daemon(&a, &format!("tcp://127.0.0.1:{}", free_port())),
        daemon(&b, &format!("tcp://127.0.0.1:{pb}")),
    );
    let want = b"no server needed".to_vec();
    wait_for(LIMIT, "the file to arrive", || {
        let (path, want) = (b.path("f/over-the-dht.txt"), want.clone());
        async move { (std::fs::read(&path).ok()? == want).then_some(()) }
    })
    .await;
    let found = wait_for(LIMIT, "a connection dialled at an address from the DHT", || async {
        let mut found = Vec::new();
        for t in [&a, &b] {
            let v: serde_json::Value =
                serde_json::from_slice(&t.peerfold(&["status", "--json"]).stdout).ok()?;
            let d = v["devices"][0].clone();
            if d["connected"] != true {
                return None;
            }
            found.push(d);
        }
        Some(found)
    })
    .await;
    // Whichever side dialled found the other on the DHT.
    let dialled: Vec<_> = found.iter().filter(|d| !d["found"].is_null()).collect();
    assert!(!dialled.is_empty() && dialled.iter().all(|d| d["found"] == "dht"), "{found:?}");
    let candidates = ok(&a.peerfold(&["device", "candidates", "--json"]));
    assert_eq!(candidates.trim(), "[]", "known devices are not candidates");
}
