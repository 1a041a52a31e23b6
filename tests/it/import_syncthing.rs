//! `peerfold import-syncthing` against real Syncthings: a device that switches from Syncthing
//! to Peerfold keeps its device ID, and a folder Syncthing had synced is not transferred again.

use std::path::Path;
use std::time::Duration;

use crate::interop::snapshot;
use crate::syncthing::{StDevice, StFolder, Syncthing};
use crate::util::{Daemon, TestDir, ok, pseudo_random, wait_for};

const LIMIT: Duration = Duration::from_secs(120);

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Waits until `st` has all of folder `f` and nothing to do.
async fn st_synced(st: &Syncthing, files: u64) {
    wait_for(LIMIT, "Syncthing to have the whole folder", || async {
        let s = st.try_get("/rest/db/status?folder=f").await?;
        (s["state"] == "idle" && s["needFiles"] == 0 && s["localFiles"] == files && s["globalFiles"] == files)
            .then_some(())
    })
    .await;
}

/// Two Syncthings, S1 and S2, sync a folder that both wrote to; S1 stops, its home is imported
/// into a fresh Peerfold home, and Peerfold takes S1's place beside S2: the same device ID,
/// the folder ends identical on both, and what Peerfold receives is under 1 % of the folder.
async fn case(scheme: &str) {
    let t = TestDir::new();
    for dir in ["s1", "s2", "d1", "d2"] {
        std::fs::create_dir_all(t.path(dir)).unwrap();
    }
    let mut s1 = Syncthing::new(t.path("s1"), scheme);
    let mut s2 = Syncthing::new(t.path("s2"), scheme);
    let (d1, d2) = (t.path("d1"), t.path("d2"));
    // Files from both sides, so versions carry both devices' counters.
    write(&d1, "big/one.bin", &pseudo_random(6 << 20, 1));
    write(&d1, "big/two.bin", &pseudo_random(3 << 20, 2));
    write(&d1, "docs/readme.txt", b"written by s1\n");
    write(&d2, "media/three.bin", &pseudo_random(5 << 20, 3));
    write(&d2, "notes/todo.txt", b"written by s2\n");
    let files = 5;
    let folder_bytes: u64 = (6 + 3 + 5) << 20;
    s1.configure(
        &[StFolder { id: "f", path: &d1, kind: "sendreceive", devices: &[&s2.id] }],
        &[StDevice { id: &s2.id, name: "s2", address: &s2.listen }],
    );
    s2.configure(
        &[StFolder { id: "f", path: &d2, kind: "sendreceive", devices: &[&s1.id] }],
        &[StDevice { id: &s1.id, name: "s1", address: &s1.listen }],
    );
    s1.start().await;
    s2.start().await;
    st_synced(&s1, files).await;
    st_synced(&s2, files).await;
    // And an edit on S2 of a file S1 wrote: its version is now both devices'.
    write(&d2, "docs/readme.txt", b"written by s1, edited by s2\n");
    s2.scan("f").await;
    wait_for(LIMIT, "S1 to take S2's edit", || async {
        let text = std::fs::read(d1.join("docs/readme.txt")).ok()?;
        (text == b"written by s1, edited by s2\n").then_some(())
    })
    .await;
    st_synced(&s1, files).await;
    assert_eq!(snapshot(&d1), snapshot(&d2));

    // What S2 reports for S1's connection, to tell Peerfold's from it below.
    let syncthing_client =
        s2.get("/rest/system/connections").await["connections"][s1.id.as_str()]["clientVersion"]
            .as_str()
            .unwrap()
            .to_owned();
    s1.kill();
    let out = ok(&t.peerfold(&["import-syncthing", s1.home.to_str().unwrap()]));
    assert!(out.contains(&s1.id), "{out}");
    assert!(out.contains("Added send-receive folder \"f\""), "{out}");
    assert_eq!(ok(&t.peerfold(&["id"])).trim(), s1.id);

    // Where S2 dials S1; Peerfold dials S2 at the address S1's configuration had.
    let daemon = Daemon::start(&t, &s1.listen);
    // Connected is not enough: the Hellos and both indexes must have been exchanged (S2 may
    // still hold S1's dead connection for a while, and its counters are that connection's).
    t.json_until(LIMIT, &["status", "--json"], "Peerfold in sync with S2", |v| {
        let (folder, device) = (&v["folders"][0], &v["devices"][0]);
        folder["state"] == "idle"
            && folder["need"]["items"] == 0
            && folder["local"]["files"] == 5
            && folder["global"]["files"] == 5
            && folder["devices"][0]["need"]["items"] == 0
            && device["connected"] == true
            && device["client"].as_str().is_some_and(|c| c.starts_with("syncthing"))
    })
    .await;
    wait_for(LIMIT, "S2 to see Peerfold complete", || async {
        let conns = s2.try_get("/rest/system/connections").await?;
        let conn = &conns["connections"][s1.id.as_str()];
        let c = s2.try_get(&format!("/rest/db/completion?folder=f&device={}", s1.id)).await?;
        let s = s2.try_get("/rest/db/status?folder=f").await?;
        (conn["connected"] == true
            && conn["clientVersion"].as_str().is_some_and(|v| v != syncthing_client)
            && c["completion"] == 100
            && s["needFiles"] == 0
            && s["state"] == "idle")
            .then_some(())
    })
    .await;
    assert_eq!(snapshot(&d1), snapshot(&d2));
    let names = snapshot(&d1).unwrap();
    assert!(!names.keys().any(|n| n.contains(".sync-conflict-")), "{names:#?}");

    // Nothing re-transferred: Peerfold's counter of bytes read from S2, and S2's of bytes sent
    // to it (both count this connection only).
    let status = t.json_until(LIMIT, &["status", "--json"], "status", |_| true).await;
    let received = status["devices"][0]["bytes_in"].as_u64().unwrap();
    let st_sent = s2.get("/rest/system/connections").await["connections"][s1.id.as_str()]["outBytesTotal"]
        .as_u64()
        .unwrap();
    assert!(
        received < folder_bytes / 100 && st_sent < folder_bytes / 100,
        "Peerfold received {received} bytes and S2 sent {st_sent}, of a folder of {folder_bytes}\n{status}"
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_syncthing_home_transfers_nothing_again_over_quic() {
    case("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_syncthing_home_transfers_nothing_again_over_tcp() {
    case("tcp").await;
}
