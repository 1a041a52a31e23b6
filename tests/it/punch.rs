//! Hole punching in a small Internet of network namespaces: two homes behind NATs that drop
//! every unsolicited inbound packet (port-restricted cone: masquerade with the source port
//! kept, and only replies let in), and a "public" namespace that routes between them and runs
//! the real STUN server (coturn's `turnserver --stun-only`) and a DHT of our own (`mainline`
//! nodes). Two daemons that know each other only as `dynamic` learn their public QUIC
//! addresses with STUN, find each other on the DHT, dial each other at once and end up on a
//! direct QUIC connection, never a relayed one.
//!
//! The same Internet with a real relay (`strelaysrv`) in the public namespace: devices that
//! start out relayed, because one NAT drops everything from the other, move to a direct QUIC
//! connection once the block is lifted, and a transfer in progress completes.
//!
//! Nothing leaves the namespaces: the public addresses are documentation ranges (TEST-NET),
//! and the namespaces have no route out.

use std::os::fd::AsFd as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::relay::{RELAY_BIN, RealRelay};
use crate::util::{Daemon, TestDir, ip, ok, pseudo_random, set_options, wait_for};

/// Discovery, STUN and the punch on a loaded machine.
const LIMIT: Duration = Duration::from_secs(120);
/// The public address of the STUN server and the DHT nodes.
const PUBLIC: &str = "203.0.113.1";
/// Each NAT's public (WAN) address and the public router's address on that link.
const WAN: [(&str, &str); 2] = [("198.51.100.1", "198.51.100.254"), ("192.0.2.1", "192.0.2.254")];
const STUN_PORT: u16 = 3478;
/// Where each daemon listens for QUIC, in its home.
const QUIC_PORT: u16 = 22000;
/// The public port each NAT maps the QUIC socket to: not the listening port, so only STUN can
/// tell it (the DHT records the IP an announcement comes from, but the port it is told).
const MAPPED_PORT: u16 = 30000;

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]).args(args);
    cmd
}

/// The Internet: public (routes between the NATs), NAT a, home a, NAT b, home b. Deleted on
/// drop, with every process started in it.
struct Internet {
    names: [String; 5],
    children: Vec<std::process::Child>,
}

impl Internet {
    const PUBLIC: usize = 0;
    const NAT: [usize; 2] = [1, 3];
    const HOME: [usize; 2] = [2, 4];

    fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        crate::util::require_root();
        assert!(
            std::path::Path::new("/usr/sbin/nft").exists(),
            "this test needs nftables for its NATs: apt-get install nftables"
        );
        // Short: interface names built from it must stay within 15 characters.
        let tag = format!("p{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let names = ["p", "na", "ha", "nb", "hb"].map(|s| format!("{tag}{s}"));
        // Constructed before the first `ip` call so that Drop cleans up whatever was made.
        let net = Self { names, children: Vec::new() };
        for ns in &net.names {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let public = &net.names[Self::PUBLIC];
        ip(&["-n", public, "addr", "add", &format!("{PUBLIC}/32"), "dev", "lo"]);
        sysctl(public, "net.ipv4.ip_forward=1");
        for (i, side) in [(0, "a"), (1, "b")] {
            let (nat, home) = (&net.names[Self::NAT[i]], &net.names[Self::HOME[i]]);
            let (wan, router) = WAN[i];
            let link = |ns_x: &str, x: &str, ns_y: &str, y: &str| {
                ip(&["link", "add", x, "type", "veth", "peer", "name", y]);
                ip(&["link", "set", x, "netns", ns_x]);
                ip(&["link", "set", y, "netns", ns_y]);
            };
            let (wan_p, wan_n) = (format!("{tag}w{side}"), format!("{tag}v{side}"));
            let (lan_n, lan_h) = (format!("{tag}l{side}"), format!("{tag}m{side}"));
            link(public, &wan_p, nat, &wan_n);
            link(nat, &lan_n, home, &lan_h);
            let lan = format!("192.168.{}", i + 1);
            for (ns, dev, addr) in [
                (public, &wan_p, format!("{router}/24")),
                (nat, &wan_n, format!("{wan}/24")),
                (nat, &lan_n, format!("{lan}.1/24")),
                (home, &lan_h, format!("{lan}.2/24")),
            ] {
                ip(&["-n", ns, "addr", "add", &addr, "dev", dev]);
                ip(&["-n", ns, "link", "set", dev, "up"]);
            }
            ip(&["-n", nat, "route", "add", "default", "via", router]);
            ip(&["-n", home, "route", "add", "default", "via", &format!("{lan}.1")]);
            sysctl(nat, "net.ipv4.ip_forward=1");
            // The QUIC socket is mapped to one public port whatever it sends to
            // (endpoint-independent mapping), the rest masqueraded; conntrack lets in only
            // replies from the exact address and port sent to (port-restricted filtering).
            // Unsolicited packets to the NAT itself are dropped, as home routers do: one let
            // through to the (closed) local port would leave a conntrack entry that makes the
            // masquerade of our own later packet to that peer pick another port.
            let rules = format!(
                "table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100; policy accept;\n  \
                 oifname \"{wan_n}\" udp sport {QUIC_PORT} snat to {wan}:{MAPPED_PORT}\n  \
                 oifname \"{wan_n}\" masquerade\n }}\n}}\n\
                 table ip filter {{\n chain through {{\n  type filter hook forward priority 0; policy drop;\n  \
                 ct state established,related accept\n  iifname \"{lan_n}\" accept\n }}\n \
                 chain in {{\n  type filter hook input priority 0; policy accept;\n  \
                 iifname \"{wan_n}\" ct state established,related accept\n  iifname \"{wan_n}\" drop\n }}\n}}\n"
            );
            let mut nft = in_ns(nat, "nft", &["-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
            use std::io::Write as _;
            nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
            assert!(nft.wait().unwrap().success(), "nft refused the NAT rules");
        }
        net
    }

    /// Starts coturn as a plain STUN server on the public address.
    fn start_stun(&mut self) {
        let pidfile = std::env::temp_dir().join(format!("{}-turnserver.pid", self.names[Self::PUBLIC]));
        let port = STUN_PORT.to_string();
        let child = in_ns(
            &self.names[Self::PUBLIC],
            "turnserver",
            &[
                "-n",
                "--stun-only",
                "--listening-ip",
                PUBLIC,
                "--listening-port",
                &port,
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--log-file",
                "stdout",
                "--pidfile",
                pidfile.to_str().unwrap(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start turnserver (apt-get install coturn): {e}"));
        self.children.push(child);
    }

    /// Runs `f` on a thread inside namespace `i`: sockets it opens belong there.
    fn run_in<T: Send + 'static>(&self, i: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.names[i]);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// Makes NAT `i` drop everything from the other NAT's public address (and so every direct
    /// path between the two homes); `lift_block` ends it.
    fn block(&self, i: usize) {
        let other = WAN[1 - i].0;
        let rules = format!(
            "table ip block {{\n chain f {{\n  type filter hook forward priority -10; policy accept;\n  \
             ip saddr {other} drop\n }}\n}}\n"
        );
        let mut nft =
            in_ns(&self.names[Self::NAT[i]], "nft", &["-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
        use std::io::Write as _;
        nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        assert!(nft.wait().unwrap().success(), "nft refused the block");
    }

    fn lift_block(&self, i: usize) {
        let status =
            in_ns(&self.names[Self::NAT[i]], "nft", &["delete", "table", "ip", "block"]).status().unwrap();
        assert!(status.success(), "nft could not lift the block");
    }

    fn daemon(&self, i: usize, t: &TestDir) -> Daemon {
        // Debug logs (dials, DHT lookups) so that a failure says which step failed.
        let log = "RUST_LOG=info,peerfold=debug";
        let mut cmd = in_ns(&self.names[i], "env", &[log, env!("CARGO_BIN_EXE_peerfold")]);
        let listen = format!("quic://0.0.0.0:{QUIC_PORT}");
        cmd.arg("--home").arg(t.home()).args(["serve", "--listen", &listen, "--gui-address", "127.0.0.1:0"]);
        Daemon::spawn(cmd)
    }
}

fn sysctl(ns: &str, setting: &str) {
    assert!(in_ns(ns, "sysctl", &["-qw", setting]).status().unwrap().success(), "sysctl {setting}");
}

impl Drop for Internet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.names {
            // Deleting a namespace deletes the veth ends in it, and with them the pairs.
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Discovery only through the DHT at `bootstrap` and STUN at the public server.
fn internet_discovery(t: &TestDir, bootstrap: &[String]) {
    set_options(
        t,
        [
            ("discovery", true.into()),
            ("local_discovery", false.into()),
            ("port_mapping", false.into()),
            ("global_discovery", true.into()),
            ("dht_bootstrap", bootstrap.to_vec().into()),
            ("stun", vec![toml::Value::from(format!("{PUBLIC}:{STUN_PORT}"))].into()),
        ],
    );
}

/// Behind two port-restricted-cone NATs, with STUN and a DHT in the public namespace, two
/// devices that know each other only as `dynamic` connect directly over QUIC through the
/// holes they punch, and sync a folder over it.
#[tokio::test(flavor = "multi_thread")]
async fn behind_two_cone_nats_devices_punch_through_and_connect_directly_over_quic() {
    let mut net = Internet::new();
    net.start_stun();
    let testnet = net.run_in(Internet::PUBLIC, || {
        mainline::Testnet::builder(3).bind_address(PUBLIC.parse().unwrap()).build().unwrap()
    });
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (ok(&a.peerfold(&["id"])).trim().to_owned(), ok(&b.peerfold(&["id"])).trim().to_owned());
    ok(&a.peerfold(&["device", "add", &idb, "--name", "b", "--address", "dynamic"]));
    ok(&b.peerfold(&["device", "add", &ida, "--name", "a", "--address", "dynamic"]));
    for (t, other) in [(&a, &idb), (&b, &ida)] {
        ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f", "--share", other]));
        internet_discovery(t, &testnet.bootstrap);
    }
    let want = pseudo_random(256 << 10, 18);
    a.write("f/punched.bin", &want);
    let (da, db) = (net.daemon(Internet::HOME[0], &a), net.daemon(Internet::HOME[1], &b));

    // Each learns its NAT's public address and mapped port with STUN.
    for (d, (wan, _)) in [(&da, WAN[0]), (&db, WAN[1])] {
        let line = format!("quic://{wan}:{MAPPED_PORT}");
        wait_for(LIMIT, "the STUN-mapped address", || {
            let found = d.log().lines().any(|l| l.contains("STUN") && l.contains(&line));
            async move { found.then_some(()) }
        })
        .await;
    }
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !std::fs::read(b.path("f/punched.bin")).is_ok_and(|got| got == want) {
        // The daemons' logs say which step failed: STUN, the DHT, or the dials.
        assert!(
            tokio::time::Instant::now() < deadline,
            "the file did not cross both NATs\n--- a:\n{}\n--- b:\n{}",
            da.log(),
            db.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (t, (other_wan, _)) in [(&a, WAN[1]), (&b, WAN[0])] {
        let status = t
            .json_until(LIMIT, &["status", "--json"], "a connection", |v| {
                v["devices"][0]["connected"] == true
            })
            .await;
        let device = &status["devices"][0];
        assert_eq!(device["transport"], "quic", "{status}");
        assert_eq!(device["address"], format!("{other_wan}:{MAPPED_PORT}"), "{status}");
    }
    drop((da, db));
    drop(testnet);
}

/// The transport of the first device in `status --json`, if it is connected.
fn transport(t: &TestDir) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&t.peerfold(&["status", "--json"]).stdout).ok()?;
    let device = &v["devices"][0];
    (device["connected"] == true).then(|| device["transport"].as_str().map(str::to_owned)).flatten()
}

/// Devices that can reach each other only through the relay (NAT a drops everything from NAT
/// b) start relayed; once the block is lifted, the redial of direct addresses that goes on
/// while relayed punches through and the connection moves to direct QUIC on both sides, and the
/// file that was crossing the relay (slowly: the relay is rate-limited) completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_connection_moves_to_punched_quic_when_the_block_is_lifted() {
    let mut net = Internet::new();
    net.start_stun();
    let testnet = net.run_in(Internet::PUBLIC, || {
        mainline::Testnet::builder(3).bind_address(PUBLIC.parse().unwrap()).build().unwrap()
    });
    // 256 KB/s per session: the file below takes minutes through the relay.
    let mut relay_cmd = in_ns(&net.names[Internet::PUBLIC], RELAY_BIN, &[]);
    relay_cmd.arg("-per-session-rate=262144");
    let relay = RealRelay::start_in(relay_cmd, "0.0.0.0:22067", Some(PUBLIC));
    let relay_url = relay.url.to_string();
    net.block(0);
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (ok(&a.peerfold(&["id"])).trim().to_owned(), ok(&b.peerfold(&["id"])).trim().to_owned());
    for (t, other, name) in [(&a, &idb, "b"), (&b, &ida, "a")] {
        ok(&t.peerfold(&[
            "device",
            "add",
            other,
            "--name",
            name,
            "--address",
            "dynamic",
            "--address",
            &relay_url,
        ]));
        ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f", "--share", other]));
        internet_discovery(t, &testnet.bootstrap);
        set_options(t, [("relays", toml::Value::Array(vec![relay_url.clone().into()]))]);
    }
    let want = pseudo_random(48 << 20, 19);
    a.write("f/crossing.bin", &want);
    let (da, db) = (net.daemon(Internet::HOME[0], &a), net.daemon(Internet::HOME[1], &b));
    for t in [&a, &b] {
        wait_for(LIMIT, "a relayed connection", || {
            let relayed = transport(t).as_deref() == Some("relay");
            async move { relayed.then_some(()) }
        })
        .await;
    }
    // Lift the block while the file is still crossing the relay.
    wait_for(LIMIT, "the transfer to start", || {
        let v: Option<serde_json::Value> =
            serde_json::from_slice(&b.peerfold(&["status", "--json"]).stdout).ok();
        let read = v.and_then(|v| v["devices"][0]["bytes_in"].as_u64()).unwrap_or(0);
        async move { (read > 1 << 20).then_some(()) }
    })
    .await;
    assert!(!b.path("f/crossing.bin").exists(), "the file crossed the relay before the block was lifted");
    net.lift_block(0);
    for t in [&a, &b] {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while transport(t).as_deref() != Some("quic") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no move to direct QUIC\n--- a:\n{}\n--- b:\n{}",
                da.log(),
                db.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    wait_for(LIMIT, "the file to complete over the direct connection", || {
        let done = std::fs::read(b.path("f/crossing.bin")).is_ok_and(|got| got == want);
        async move { done.then_some(()) }
    })
    .await;
    drop((da, db, relay));
    drop(testnet);
}
