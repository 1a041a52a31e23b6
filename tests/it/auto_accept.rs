//! `auto_accept_folders`: a folder a trusted device offers is added under the default folder
//! path and syncs with no user step, and a hostile label never chooses where it is written.

use std::time::Duration;

use crate::util::{Daemon, TestDir, free_port, ok, set_options, wait_for};

const LIMIT: Duration = Duration::from_secs(90);

async fn case(transport: &str) {
    let (a, b) = (TestDir::new(), TestDir::new());
    let (ida, idb) = (ok(&a.peerfold(&["id"])).trim().to_owned(), ok(&b.peerfold(&["id"])).trim().to_owned());
    let (pa, pb) = (free_port(), free_port());
    let (la, lb) = (format!("{transport}://127.0.0.1:{pa}"), format!("{transport}://127.0.0.1:{pb}"));
    ok(&a.peerfold(&["device", "add", &idb, "--name", "b", "--address", &lb]));
    // B trusts A to choose its folders.
    ok(&b.peerfold(&["device", "add", &ida, "--name", "a", "--address", &la, "--auto-accept"]));
    let listed = ok(&b.peerfold(&["device", "list", "--json"]));
    assert!(listed.contains("\"auto_accept_folders\": true"), "{listed}");
    let base = b.path("accepted");
    set_options(&b, [("default_folder_path", base.to_str().unwrap().into())]);
    // A's label tries to climb out of the default folder path.
    ok(&a.peerfold(&[
        "folder",
        "add",
        a.path("f").to_str().unwrap(),
        "--id",
        "photos-1",
        "--label",
        "../../evil/Photos",
        "--share",
        &idb,
    ]));
    a.write("f/hello.txt", b"hello from a");
    let (_da, _db) = (Daemon::start(&a, &la), Daemon::start(&b, &lb));
    // Added at the sanitized label under the default path, and synced.
    let want = base.join("evilPhotos").join("hello.txt");
    wait_for(LIMIT, "the auto-accepted folder to sync", || {
        let want = want.clone();
        async move { (std::fs::read(&want).ok()? == b"hello from a").then_some(()) }
    })
    .await;
    let folders: serde_json::Value =
        serde_json::from_str(&ok(&b.peerfold(&["folder", "list", "--json"]))).unwrap();
    assert_eq!(folders[0]["id"], "photos-1", "{folders}");
    assert_eq!(folders[0]["devices"][0], ida.as_str(), "{folders}");
    // Nothing was written beside the default path.
    let beside: Vec<_> = std::fs::read_dir(b.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!b.path("evil").exists() && !b.dir.path().parent().unwrap().join("evil").exists(), "{beside:?}");
    // No offer is left for the user to accept.
    let pending = ok(&b.peerfold(&["folder", "pending", "--json"]));
    assert!(!pending.contains("photos-1"), "{pending}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_accept_device_s_folder_is_added_and_syncs_over_quic() {
    case("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_accept_device_s_folder_is_added_and_syncs_over_tcp() {
    case("tcp").await;
}
