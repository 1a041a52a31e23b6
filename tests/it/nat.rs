//! Port mapping against a fake NAT-PMP gateway and a fake UPnP Internet gateway device, both on
//! loopback: the mapped external address joins the announced addresses, and a lease is renewed
//! before it runs out.

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

/// Runs port mapping through `router` for a TCP and a QUIC listener, waits until the mapped
/// addresses join the announced ones, and returns them with the stop switch and the task.
async fn announced_after_mapping(
    router: nat::Router,
) -> (Vec<String>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listen: Vec<Address> =
        ["tcp://0.0.0.0:22000", "quic://0.0.0.0:22001"].iter().map(|a| a.parse().unwrap()).collect();
    let (announced, mut addresses) = watch::channel(listen.clone());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(nat::run(listen, router, Arc::new(announced), shutdown));
    let got = wait_for(LIMIT, "the mapped addresses to be announced", || {
        let current: Vec<String> = addresses.borrow_and_update().iter().map(ToString::to_string).collect();
        async move { (current.len() == 4).then_some(current) }
    })
    .await;
    (got, stop, task)
}

#[tokio::test]
async fn mapped_ports_are_announced_and_renewed() {
    let (gateway, maps) = fake_gateway(2).await;
    let (got, stop, task) = announced_after_mapping(nat::Router::NatPmp(gateway)).await;
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

const DESCRIPTION: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <device>
    <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
    <friendlyName>fake IGD</friendlyName>
    <deviceList><device>
      <deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
      <deviceList><device>
        <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
        <serviceList><service>
          <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
          <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
          <SCPDURL>/scpd.xml</SCPDURL>
          <controlURL>/control</controlURL>
          <eventSubURL>/events</eventSubURL>
        </service></serviceList>
      </device></deviceList>
    </device></deviceList>
  </device>
</root>"#;

fn scpd() -> String {
    let argument = |name: &str, direction: &str| {
        format!("<argument><name>{name}</name><direction>{direction}</direction></argument>")
    };
    let add: String = [
        "NewRemoteHost",
        "NewExternalPort",
        "NewProtocol",
        "NewInternalPort",
        "NewInternalClient",
        "NewEnabled",
        "NewPortMappingDescription",
        "NewLeaseDuration",
    ]
    .iter()
    .map(|n| argument(n, "in"))
    .collect();
    format!(
        r#"<?xml version="1.0"?><scpd xmlns="urn:schemas-upnp-org:service-1-0"><actionList>
        <action><name>GetExternalIPAddress</name><argumentList>{}</argumentList></action>
        <action><name>AddPortMapping</name><argumentList>{add}</argumentList></action>
        </actionList></scpd>"#,
        argument("NewExternalIPAddress", "out")
    )
}

fn soap(action: &str, inner: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:{action}Response xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">{inner}</u:{action}Response></s:Body></s:Envelope>"#
    )
}

/// Reads one HTTP request (head and body) from `stream`.
async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // A client that gives up (a search that already found its gateway) may reset.
        let Ok(n) = stream.read(&mut buf).await else { return String::from_utf8_lossy(&data).into_owned() };
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length || n == 0 {
                return text;
            }
        } else if n == 0 {
            return text;
        }
    }
}

/// A UPnP Internet gateway device: answers an SSDP search on one UDP port of loopback with the
/// location of its description, serves that and its service description over HTTP, and
/// answers GetExternalIPAddress (198.51.100.4) and AddPortMapping, keeping each mapping
/// request's body.
async fn fake_igd() -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let location = format!("http://{}/description.xml", http.local_addr().unwrap());
    let ssdp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ssdp_addr = ssdp.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let (n, from) = ssdp.recv_from(&mut buf).await.unwrap();
            if String::from_utf8_lossy(&buf[..n]).starts_with("M-SEARCH") {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
                     ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                     USN: uuid:fake-igd::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                     LOCATION: {location}\r\n\r\n"
                );
                ssdp.send_to(reply.as_bytes(), from).await.unwrap();
            }
        }
    });
    let mappings = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&mappings);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = http.accept().await.unwrap();
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                let request = read_request(&mut stream).await;
                let first = request.lines().next().unwrap_or_default().to_owned();
                let body = if first.starts_with("GET /description.xml") {
                    DESCRIPTION.to_owned()
                } else if first.starts_with("GET /scpd.xml") {
                    scpd()
                } else if request.contains("#GetExternalIPAddress") {
                    soap("GetExternalIPAddress", "<NewExternalIPAddress>198.51.100.4</NewExternalIPAddress>")
                } else if request.contains("#AddPortMapping") {
                    kept.lock().unwrap().push(request.clone());
                    soap("AddPortMapping", "")
                } else {
                    String::new()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (ssdp_addr, mappings)
}

#[tokio::test]
async fn upnp_maps_every_listening_port_and_the_external_address_is_announced() {
    let (ssdp, mappings) = fake_igd().await;
    let (got, stop, task) = announced_after_mapping(nat::Router::Upnp(ssdp)).await;
    assert_eq!(
        got,
        [
            "tcp://0.0.0.0:22000",
            "quic://0.0.0.0:22001",
            "tcp://198.51.100.4:22000",
            "quic://198.51.100.4:22001"
        ]
    );
    let requests = mappings.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for (request, (protocol, port)) in requests.iter().zip([("TCP", 22000), ("UDP", 22001)]) {
        assert!(request.contains(&format!("<NewProtocol>{protocol}</NewProtocol>")), "{request}");
        assert!(request.contains(&format!("<NewInternalPort>{port}</NewInternalPort>")), "{request}");
        assert!(request.contains("<NewInternalClient>127.0.0.1</NewInternalClient>"), "{request}");
        assert!(request.contains("<NewLeaseDuration>7200</NewLeaseDuration>"), "{request}");
    }
    stop.send(true).unwrap();
    task.await.unwrap();
}
