//! Invitations: two fresh homes pair and share a folder with `peerfold invite` on one side and
//! `peerfold join` on the other, and a link is refused once used, once expired, and when the
//! proof was made for another certificate.

use std::time::Duration;

use peerfold::identity::Identity;
use peerfold::invite::{InviteError, Link, join_proving};

use crate::util::{Daemon, TestDir, fails, free_port, ok, wait_for};

const LIMIT: Duration = Duration::from_secs(90);

/// Waits for the daemon's control socket: `Daemon::start` returns once the daemon listens for
/// devices, and the control socket is bound by a task of its own a moment later.
async fn control_socket(t: &TestDir) {
    let socket = t.home().join(peerfold::control::SOCKET_FILE);
    wait_for(LIMIT, "the control socket", || {
        let socket = socket.clone();
        async move { socket.exists().then_some(()) }
    })
    .await;
}

/// An inviting home with folder `f` ("Photos") holding one file, its daemon, and the JSON of
/// a fresh invitation made with `args`.
async fn inviter(transport: &str, args: &[&str]) -> (TestDir, Daemon, serde_json::Value) {
    let a = TestDir::new();
    let path = a.path("f");
    ok(&a.peerfold(&["folder", "add", path.to_str().unwrap(), "--id", "f", "--label", "Photos"]));
    a.write("f/hello.txt", b"hello from a");
    let daemon = Daemon::start(&a, &format!("{transport}://127.0.0.1:{}", free_port()));
    control_socket(&a).await;
    let mut invite = vec!["invite", "--folder", "f", "--json"];
    invite.extend_from_slice(args);
    let json = serde_json::from_str(&ok(&a.peerfold(&invite))).unwrap();
    (a, daemon, json)
}

async fn file_is(path: std::path::PathBuf, want: &'static [u8]) {
    wait_for(LIMIT, "the file to arrive", || {
        let path = path.clone();
        async move { (std::fs::read(&path).ok()? == want).then_some(()) }
    })
    .await;
}

async fn invite_then_join(transport: &str) {
    let (a, da, invite) = inviter(transport, &[]).await;
    let link = invite["link"].as_str().unwrap().to_owned();
    assert!(link.starts_with("peerfold://invite/"), "{link}");
    // The text form prints the link first and a QR code.
    let text = ok(&a.peerfold(&["invite", "--folder", "f"]));
    assert!(text.starts_with("peerfold://invite/") && text.contains('█'), "{text}");

    // b is fresh: no daemon yet, nothing configured. Joining is the only step.
    let b = TestDir::new();
    let target = b.path("photos");
    let out = ok(&b.peerfold(&["join", &link, "--path", target.to_str().unwrap()]));
    assert!(out.starts_with("Joined device "), "{out}");
    let _db = Daemon::start(&b, &format!("{transport}://127.0.0.1:{}", free_port()));
    control_socket(&b).await;
    file_is(target.join("hello.txt"), b"hello from a").await;
    let shown = ok(&b.peerfold(&["folder", "list", "--json"]));
    let folders: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(folders[0]["label"], "Photos", "{shown}");
    let devices: serde_json::Value =
        serde_json::from_str(&ok(&a.peerfold(&["device", "list", "--json"]))).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 1, "b was added on a: {devices}");

    // The link was for one use: a replay, by b or by anyone, is refused on both sides.
    let c = TestDir::new();
    let err = fails(&c.peerfold(&["join", &link, "--path", c.path("p").to_str().unwrap()]));
    assert!(err.contains("this invitation was already used"), "{err}");
    assert!(!c.path("p").exists(), "nothing was added on c");
    let err = fails(&b.peerfold(&["join", &link, "--path", b.path("again").to_str().unwrap()]));
    assert!(err.contains("already used"), "{err}");
    assert!(da.log().contains("refused an invitation"), "{}", da.log());

    // A fresh link joined through a running daemon (the web UI's way) works the same.
    let again: serde_json::Value =
        serde_json::from_str(&ok(&a.peerfold(&["invite", "--folder", "f", "--json"]))).unwrap();
    let _dc = Daemon::start(&c, &format!("{transport}://127.0.0.1:{}", free_port()));
    control_socket(&c).await;
    let out =
        ok(&c.peerfold(&["join", again["link"].as_str().unwrap(), "--path", c.path("p").to_str().unwrap()]));
    assert!(out.starts_with("Joined device "), "{out}");
    file_is(c.path("p/hello.txt"), b"hello from a").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_and_join_pair_two_fresh_homes_and_sync_over_quic() {
    invite_then_join("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_and_join_pair_two_fresh_homes_and_sync_over_tcp() {
    invite_then_join("tcp").await;
}

async fn expired(transport: &str) {
    let (a, da, invite) = inviter(transport, &["--expires", "1s"]).await;
    let expires_at = invite["expires_at"].as_i64().unwrap();
    wait_for(LIMIT, "the invitation to expire", || async move {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        (i64::try_from(now).unwrap() > expires_at).then_some(())
    })
    .await;
    let b = TestDir::new();
    // A path is given so that, were it accepted, nothing would land in the real home folder.
    let target = b.path("f");
    let err =
        fails(&b.peerfold(&["join", invite["link"].as_str().unwrap(), "--path", target.to_str().unwrap()]));
    assert!(err.contains("this invitation has expired"), "{err}");
    assert!(da.log().contains("has expired"), "{}", da.log());
    let devices: serde_json::Value =
        serde_json::from_str(&ok(&a.peerfold(&["device", "list", "--json"]))).unwrap();
    assert_eq!(devices, serde_json::json!([]), "nobody was added");
    assert!(!target.exists(), "nothing was added on b");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_invitation_is_refused_over_quic() {
    expired("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_invitation_is_refused_over_tcp() {
    expired("tcp").await;
}

/// A proof captured from b (made for b's certificate) is sent by c over c's own certificate:
/// refused, and the invitation is still b's to use.
async fn foreign_proof(transport: &str) {
    let (a, _da, invite) = inviter(transport, &[]).await;
    let link = Link::parse(invite["link"].as_str().unwrap()).unwrap();
    let (b, c) = (TestDir::new(), TestDir::new());
    let b_id = Identity::load_or_generate(&b.home()).unwrap();
    let c_id = Identity::load_or_generate(&c.home()).unwrap();
    match join_proving(&c_id, &link, "c", b_id.device_id()).await {
        Err(InviteError::Refused(why)) => assert!(why.contains("proof does not match"), "{why}"),
        other => panic!("a proof for another certificate was not refused: {other:?}"),
    }
    let devices: serde_json::Value =
        serde_json::from_str(&ok(&a.peerfold(&["device", "list", "--json"]))).unwrap();
    assert_eq!(devices, serde_json::json!([]), "c was not added");
    let joined = join_proving(&b_id, &link, "b", b_id.device_id()).await.unwrap();
    assert_eq!(joined.folders[0].id, "f");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proof_made_for_another_certificate_is_refused_over_quic() {
    foreign_proof("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proof_made_for_another_certificate_is_refused_over_tcp() {
    foreign_proof("tcp").await;
}

/// A link is hostile too: one whose folder ID is a folder the joiner already has, or whose
/// label names a directory the joiner already has in its home folder ("Documents"), must not
/// share that existing data with the inviter.
async fn existing_folders(transport: &str) {
    let (a, _da, invite) = inviter(transport, &["--uses", "2"]).await;
    let link = invite["link"].as_str().unwrap().to_owned();

    // b already has a folder with ID "f": joining must not share it with a.
    let b = TestDir::new();
    let mine = b.path("mine");
    ok(&b.peerfold(&["folder", "add", mine.to_str().unwrap(), "--id", "f"]));
    b.write("mine/private.txt", b"b's own");
    let out = ok(&b.peerfold(&["join", &link]));
    assert!(out.contains("already"), "{out}");
    let folders: serde_json::Value =
        serde_json::from_str(&ok(&b.peerfold(&["folder", "list", "--json"]))).unwrap();
    assert_eq!(folders[0]["devices"], serde_json::json!([]), "b's folder f stays unshared: {folders}");

    // c has ~/Photos (the offered folder's label) with its own files: the offered folder goes
    // to a new directory beside it, never into it.
    let c = TestDir::new();
    let home = c.path("user");
    c.write("user/Photos/private.txt", b"c's own");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peerfold"))
        .arg("--home")
        .arg(c.home())
        .args(["join", &link])
        .env("HOME", &home)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    ok(&out);
    let folders: serde_json::Value =
        serde_json::from_str(&ok(&c.peerfold(&["folder", "list", "--json"]))).unwrap();
    let path = folders[0]["path"].as_str().unwrap().to_owned();
    assert_ne!(std::path::Path::new(&path), home.join("Photos"), "{folders}");
    assert!(std::path::Path::new(&path).starts_with(&home), "{path}");
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_never_shares_folders_the_joiner_already_has_over_quic() {
    existing_folders("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_never_shares_folders_the_joiner_already_has_over_tcp() {
    existing_folders("tcp").await;
}
