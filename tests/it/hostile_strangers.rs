//! Attacks by devices that are not configured: a flood of new certificates with 32 KB names,
//! and connections that stall their handshake. The pending list stays bounded, names are
//! truncated, and a configured device still connects and syncs at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use peerfold::net::Net;

use crate::hostile::{Hostile, HostileDevice, file};
use crate::hostile_names::Target;
use crate::util::wait_for;

const LIMIT: Duration = Duration::from_secs(60);
/// The pending-devices bound the daemon promises.
const MAX_PENDING: usize = 100;
/// The longest pending device name kept, in characters.
const MAX_NAME: usize = 64;
/// Well within the 10 s handshake timeout: a configured device must not wait for stalled
/// handshakes to time out.
const PROMPT: Duration = Duration::from_secs(5);

/// The configured device `good` connects within [`PROMPT`], announces a file and the target
/// pulls it from it.
async fn still_syncs(target: &Target, good: &HostileDevice) {
    let dial = tokio::time::timeout(PROMPT, good.connect(&target.addr, target.id, "good"));
    let mut r: Hostile = dial.await.expect("the configured device could not connect in time");
    let data = b"from the configured device";
    r.serve(data);
    r.send_index(&[file("ok.txt", data, good.id)]).await;
    let path = target.t.path("f/ok.txt");
    let deadline = tokio::time::Instant::now() + LIMIT;
    while std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
        assert!(tokio::time::Instant::now() < deadline, "the file did not arrive");
        assert!(r.closed.is_none(), "closed: {:?}", r.closed);
        r.step().await;
    }
}

async fn strangers_flood(transport: &str) {
    let good = HostileDevice::new(transport).await;
    let target = Target::start(transport, good.id).await;
    let name = "é".repeat(16_000); // 32,000 bytes, two per character
    let strangers = MAX_PENDING + 20;
    let mut joins = tokio::task::JoinSet::new();
    for _ in 0..strangers {
        let (addr, id, name) = (target.addr.clone(), target.id, name.clone());
        joins.spawn(async move {
            let dev = HostileDevice::dialer().await;
            let mut r = dev.connect(&addr, id, &name).await;
            // Until the target hangs up on the stranger.
            let deadline = tokio::time::Instant::now() + LIMIT;
            while r.closed.is_none() && tokio::time::Instant::now() < deadline {
                r.step().await;
            }
            dev.net.shutdown().await;
        });
        // All from 127.0.0.1: below the per-address bound on handshakes at once.
        while joins.len() >= 4 {
            joins.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(j) = joins.join_next().await {
        j.unwrap();
    }
    let index = target.engine.index().clone();
    // Recording is asynchronous to the hang-up: wait until the list stops being short.
    let pending = wait_for(LIMIT, "the strangers to be pending", || {
        let index = index.clone();
        async move {
            let p = index.pending_devices().await.unwrap();
            (p.len() >= MAX_PENDING.min(strangers)).then_some(p)
        }
    })
    .await;
    assert!(pending.len() <= MAX_PENDING, "{} pending devices", pending.len());
    for p in &pending {
        assert!(p.name.chars().count() <= MAX_NAME, "a name of {} characters", p.name.chars().count());
        assert!(p.name.chars().all(|c| c == 'é'), "cut on a character boundary");
    }
    still_syncs(&target, &good).await;
    target.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_strangers_keeps_the_pending_list_bounded_over_quic() {
    strangers_flood("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_strangers_keeps_the_pending_list_bounded_over_tcp() {
    strangers_flood("tcp").await;
}

/// A loopback address other than 127.0.0.1, so that each stalled connection comes from an
/// address of its own (Linux routes all of 127.0.0.0/8 to `lo`).
fn loopback(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, i))
}

/// Opens a TCP connection from `from` and sends nothing.
async fn silent_tcp(from: IpAddr, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends the first packet of a QUIC handshake (a real client's Initial, captured) from
/// `from`, and never answers: the target's handshake stalls.
async fn silent_quic(dialer: &Net, from: IpAddr, to: SocketAddr) -> tokio::net::UdpSocket {
    let capture = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let at: peerfold::net::Address = format!("quic://{}", capture.local_addr().unwrap()).parse().unwrap();
    let mut buf = vec![0u8; 2048];
    let id = peerfold::identity::DeviceId::from_bytes([1; 32]);
    let (n, _) = tokio::select! {
        got = capture.recv_from(&mut buf) => got.unwrap(),
        _ = dialer.dial(&at, id) => panic!("the dial ended before its first packet was seen"),
    };
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap();
    socket.send_to(&buf[..n], to).await.unwrap();
    socket
}

async fn stalled_handshakes(transport: &str) {
    let good = HostileDevice::new(transport).await;
    let target = Target::start(transport, good.id).await;
    let to: SocketAddr = format!("{}:{}", target.addr.host, target.addr.port).parse().unwrap();
    // From one address, and from many.
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    let dialer = HostileDevice::new(transport).await;
    for i in 0..150u16 {
        let from = if i < 50 { loopback(1) } else { loopback((i - 48) as u8) };
        match transport {
            "tcp" => held_tcp.push(silent_tcp(from, to).await),
            _ => held_udp.push(silent_quic(&dialer.net, from, to).await),
        }
    }
    still_syncs(&target, &good).await;
    drop((held_tcp, held_udp));
    target.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_handshakes_do_not_keep_a_configured_device_out_over_quic() {
    stalled_handshakes("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_handshakes_do_not_keep_a_configured_device_out_over_tcp() {
    stalled_handshakes("tcp").await;
}
