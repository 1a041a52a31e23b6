//! The public address of the QUIC listener, learnt with STUN and announced for hole punching.
//!
//! Every few minutes this task asks the configured STUN servers, in order until one answers,
//! at which address they see the listening QUIC socket ([`crate::net::Net::stun`] sends from
//! that socket). The answer joins the announced addresses as `quic://PUBLIC-IP:PORT`, so the
//! DHT record (its port) and LAN announcements carry the socket's NAT mapping; a device that
//! looks us up dials it while we dial it back, which opens endpoint-independent NATs. Asking
//! again keeps the mapping alive and notices a new one; when no server answers, the address is
//! withdrawn (a stale mapping only costs dials that fail).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::net::{Address, Net};

/// Asked when `[options] stun` is empty and global discovery is on (as Syncthing does with its
/// own list): a few long-running public servers.
pub const DEFAULT_SERVERS: &[&str] =
    &["stun.syncthing.net:3478", "stun.l.google.com:19302", "stun.cloudflare.com:3478"];
/// How often the mapping is checked again while it answers. NATs forget idle UDP mappings in
/// minutes; a connection keeps its own alive, this keeps the announced one fresh.
const INTERVAL: Duration = Duration::from_secs(3 * 60);
/// After a round where no server answered: the first wait, doubled up to [`INTERVAL`].
const RETRY: Duration = Duration::from_secs(20);

/// Learns the QUIC listener's public address from `servers` and keeps it in `announced` until
/// `shutdown` turns true. `settled` turns true after the first round, answered or not.
pub async fn run(
    net: Arc<Net>,
    servers: Vec<String>,
    announced: Arc<watch::Sender<Vec<Address>>>,
    settled: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut published: Vec<Address> = Vec::new();
    let mut retry = RETRY;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep_until(next) => {}
        }
        let found = tokio::select! {
            _ = shutdown.changed() => break,
            found = ask(&net, &servers) => found,
        };
        let now: Vec<Address> = found.into_iter().collect();
        if now != published {
            match now.first() {
                Some(addr) => tracing::info!(address = %addr, "STUN: the QUIC listener is reachable at"),
                None => tracing::info!("STUN: no server answered; the mapped address is withdrawn"),
            }
            super::republish(&announced, &published, &now);
            published = now;
        }
        settled.send_replace(true);
        if published.is_empty() {
            next = Instant::now() + retry;
            retry = (retry * 2).min(INTERVAL);
        } else {
            next = Instant::now() + INTERVAL;
            retry = RETRY;
        }
    }
}

/// The first answer of `servers`, asked one after another.
async fn ask(net: &Net, servers: &[String]) -> Option<Address> {
    for server in servers {
        match net.stun(server).await {
            Ok(addr) => return Some(addr),
            Err(e) => {
                tracing::debug!(server = %server, error = %crate::errors::error_chain(&e), "STUN query failed")
            }
        }
    }
    None
}
