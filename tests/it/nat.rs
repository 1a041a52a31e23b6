//! Port mapping against a fake NAT-PMP gateway on loopback: the mapped external address joins
//! the announced addresses, and the lease is renewed before it runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use peerfold::discovery::nat;
use peerfold::net::Address;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::util::wait_for;

const LIMIT: Duration = Duration::from_secs(30);

/// A NAT-PMP gateway whose external address is 203.0.113.7, which maps every internal port P
/// to P + 1000 for `lifetime` seconds and counts the mapping requests.
async fn fake_gateway(lifetime: u32) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let maps = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&maps);
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let mut epoch = 0u32;
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            epoch += 1;
            let reply = match &buf[..n] {
                [0, 0] => [&[0, 128, 0, 0][..], &epoch.to_be_bytes(), &[203, 0, 113, 7]].concat(),
                [0, op @ (1 | 2), 0, 0, i0, i1, ..] if n == 12 => {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let internal = u16::from_be_bytes([*i0, *i1]);
                    [
                        &[0, 128 + op, 0, 0][..],
                        &epoch.to_be_bytes(),
                        &internal.to_be_bytes(),
                        &(internal + 1000).to_be_bytes(),
                        &lifetime.to_be_bytes(),
                    ]
                    .concat()
                }
                _ => [0, 128, 0, 5, 0, 0, 0, 0].to_vec(),
            };
            socket.send_to(&reply, from).await.unwrap();
        }
    });
    (addr, maps)
}

#[tokio::test]
async fn mapped_ports_are_announced_and_renewed() {
    let (gateway, maps) = fake_gateway(2).await;
    let listen: Vec<Address> =
        ["tcp://0.0.0.0:22000", "quic://0.0.0.0:22001"].iter().map(|a| a.parse().unwrap()).collect();
    let (announced, mut addresses) = watch::channel(listen.clone());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(nat::run(listen, Some(gateway), Arc::new(announced), shutdown));
    let got = wait_for(LIMIT, "the mapped addresses to be announced", || {
        let current: Vec<String> = addresses.borrow_and_update().iter().map(ToString::to_string).collect();
        async move { (current.len() == 4).then_some(current) }
    })
    .await;
    assert_eq!(
        got,
        [
            "tcp://0.0.0.0:22000",
            "quic://0.0.0.0:22001",
            "tcp://203.0.113.7:23000",
            "quic://203.0.113.7:23001"
        ]
    );
    // A two-second lease is renewed after one: both mappings asked for again.
    wait_for(LIMIT, "the leases to be renewed", || {
        let n = maps.load(Ordering::SeqCst);
        async move { (n >= 4).then_some(()) }
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_gateway_that_does_not_answer_maps_nothing() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let err = nat::map_nat_pmp(silent.local_addr().unwrap(), peerfold::net::Transport::Tcp, 22000)
        .await
        .unwrap_err();
    assert!(matches!(err, nat::NatError::NoAnswer), "{err}");
}
