//! Introducers, Peerfold to Peerfold: a device marked introducer makes us add the devices it
//! shares our folders with, and share those folders with them; and remove them again when it
//! stops sharing, unless the user added them.

use std::time::Duration;

use crate::util::{Daemon, TestDir, free_port, ok, wait_for};

const LIMIT: Duration = Duration::from_secs(90);

fn devices(t: &TestDir) -> serde_json::Value {
    serde_json::from_str(&ok(&t.peerfold(&["device", "list", "--json"]))).unwrap()
}

fn folder_devices(t: &TestDir) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&ok(&t.peerfold(&["folder", "list", "--json"]))).unwrap();
    v[0]["devices"]
        .as_array()
        .map(|a| a.iter().map(|d| d.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

async fn case(transport: &str) {
    // S introduces P and Q, who do not know each other.
    let (s, p, q) = (TestDir::new(), TestDir::new(), TestDir::new());
    let id = |t: &TestDir| ok(&t.peerfold(&["id"])).trim().to_owned();
    let (ids, idp, idq) = (id(&s), id(&p), id(&q));
    let (ls, lp, lq) =
        [free_port(), free_port(), free_port()].map(|port| format!("{transport}://127.0.0.1:{port}")).into();
    ok(&s.peerfold(&["device", "add", &idp, "--name", "p", "--address", &lp]));
    ok(&s.peerfold(&["device", "add", &idq, "--name", "q", "--address", &lq]));
    ok(&s.peerfold(&[
        "folder",
        "add",
        s.path("f").to_str().unwrap(),
        "--id",
        "f",
        "--share",
        &idp,
        "--share",
        &idq,
    ]));
    for t in [&p, &q] {
        ok(&t.peerfold(&["device", "add", &ids, "--name", "s", "--address", &ls, "--introducer"]));
        ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f", "--share", &ids]));
    }
    // A device P's user added directly: the introducer never removes it.
    let mine = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";
    ok(&p.peerfold(&["device", "add", mine, "--name", "mine"]));
    s.write("f/from-s.txt", b"s");
    let ds = Daemon::start(&s, &ls);
    let (_dp, _dq) = (Daemon::start(&p, &lp), Daemon::start(&q, &lq));
    // P adds Q (introduced by S, at the address S knows) and shares f with it.
    wait_for(LIMIT, "P to add Q and share f with it", || async {
        let d = devices(&p);
        let qd = d.as_array()?.iter().find(|d| d["id"] == idq.as_str())?.clone();
        (qd["introduced_by"] == ids.as_str() && folder_devices(&p).contains(&idq)).then_some(())
    })
    .await;
    let qd = devices(&p).as_array().unwrap().iter().find(|d| d["id"] == idq.as_str()).unwrap().clone();
    assert_eq!(qd["addresses"][0], lq.as_str(), "{qd}");
    // P and Q, introduced to each other, sync directly: a file from Q reaches P.
    q.write("f/from-q.txt", b"q");
    wait_for(LIMIT, "Q's file to reach P", || async {
        (std::fs::read(p.path("f/from-q.txt")).ok()? == b"q").then_some(())
    })
    .await;
    // S stops sharing f with Q: P unshares f from Q and removes Q, and keeps its own device.
    ok(&s.peerfold(&["folder", "unshare", "f", &idq]));
    wait_for(LIMIT, "P to remove Q", || async {
        let d = devices(&p);
        (!d.as_array()?.iter().any(|d| d["id"] == idq.as_str())).then_some(())
    })
    .await;
    assert!(!folder_devices(&p).contains(&idq));
    assert!(devices(&p).as_array().unwrap().iter().any(|d| d["id"] == mine), "{}", devices(&p));
    drop(ds);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_introducer_adds_and_removes_the_devices_it_shares_with_over_quic() {
    case("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_introducer_adds_and_removes_the_devices_it_shares_with_over_tcp() {
    case("tcp").await;
}

// Against Syncthing 1.19.

use crate::syncthing::{StDevice, StFolder, Syncthing};

/// Syncthing S is the introducer: it shares f with Peerfold P and Peerfold Q. P marked S as
/// introducer, so P adds Q and shares f with it; when S stops sharing f with Q, P removes Q.
async fn syncthing_introduces(transport: &str) {
    let (p, q) = (TestDir::new(), TestDir::new());
    let id = |t: &TestDir| ok(&t.peerfold(&["id"])).trim().to_owned();
    let (idp, idq) = (id(&p), id(&q));
    let (lp, lq) = [free_port(), free_port()].map(|port| format!("{transport}://127.0.0.1:{port}")).into();
    let mut st = Syncthing::new(p.path("st-home"), transport);
    let st_root = p.path("st");
    std::fs::create_dir_all(&st_root).unwrap();
    st.configure(
        &[StFolder { id: "f", path: &st_root, kind: "sendreceive", devices: &[&idp, &idq] }],
        &[StDevice { id: &idp, name: "p", address: &lp }, StDevice { id: &idq, name: "q", address: &lq }],
    );
    for t in [&p, &q] {
        ok(&t.peerfold(&["device", "add", &st.id, "--name", "st", "--address", &st.listen, "--introducer"]));
        ok(&t.peerfold(&["folder", "add", t.path("f").to_str().unwrap(), "--id", "f", "--share", &st.id]));
    }
    st.start().await;
    let (_dp, _dq) = (Daemon::start(&p, &lp), Daemon::start(&q, &lq));
    wait_for(LIMIT, "P to add Q, introduced by Syncthing, and share f with it", || async {
        let d = devices(&p);
        let qd = d.as_array()?.iter().find(|d| d["id"] == idq.as_str())?.clone();
        (qd["introduced_by"] == st.id.as_str() && folder_devices(&p).contains(&idq)).then_some(())
    })
    .await;
    // S stops sharing f with Q.
    let code = st
        .send(
            "PATCH",
            "/rest/config/folders/f",
            serde_json::json!({"devices": [{"deviceID": st.id}, {"deviceID": idp}]}),
        )
        .await;
    assert_eq!(code, 200, "{}", st.log());
    wait_for(LIMIT, "P to remove Q", || async {
        (!devices(&p).as_array()?.iter().any(|d| d["id"] == idq.as_str())).then_some(())
    })
    .await;
    assert!(!folder_devices(&p).contains(&idq));
}

#[tokio::test(flavor = "multi_thread")]
async fn syncthing_as_introducer_adds_and_removes_a_peerfold_device_over_quic() {
    syncthing_introduces("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn syncthing_as_introducer_adds_and_removes_a_peerfold_device_over_tcp() {
    syncthing_introduces("tcp").await;
}

/// Peerfold P is the introducer for Syncthing S: P shares f with S and with Peerfold Q; S
/// marked P as introducer, so S adds Q and shares f with it.
async fn peerfold_introduces(transport: &str) {
    let (p, q) = (TestDir::new(), TestDir::new());
    let id = |t: &TestDir| ok(&t.peerfold(&["id"])).trim().to_owned();
    let (idp, idq) = (id(&p), id(&q));
    let (lp, lq) = [free_port(), free_port()].map(|port| format!("{transport}://127.0.0.1:{port}")).into();
    let mut st = Syncthing::new(p.path("st-home"), transport);
    let st_root = p.path("st");
    std::fs::create_dir_all(&st_root).unwrap();
    st.configure(
        &[StFolder { id: "f", path: &st_root, kind: "sendreceive", devices: &[&idp] }],
        &[StDevice { id: &idp, name: "p", address: &lp }],
    );
    // Syncthing marks P as its introducer.
    let xml_path = st.home.join("config.xml");
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    let marked = xml.replace(
        &format!("<device id=\"{idp}\" name=\"p\" compression=\"metadata\">"),
        &format!("<device id=\"{idp}\" name=\"p\" compression=\"metadata\" introducer=\"true\">"),
    );
    assert_ne!(marked, xml);
    std::fs::write(&xml_path, marked).unwrap();
    ok(&p.peerfold(&["device", "add", &st.id, "--name", "st", "--address", &st.listen]));
    ok(&p.peerfold(&["device", "add", &idq, "--name", "q", "--address", &lq]));
    ok(&p.peerfold(&[
        "folder",
        "add",
        p.path("f").to_str().unwrap(),
        "--id",
        "f",
        "--share",
        &st.id,
        "--share",
        &idq,
    ]));
    ok(&q.peerfold(&["device", "add", &idp, "--name", "p", "--address", &lp]));
    ok(&q.peerfold(&["folder", "add", q.path("f").to_str().unwrap(), "--id", "f", "--share", &idp]));
    st.start().await;
    let (_dp, _dq) = (Daemon::start(&p, &lp), Daemon::start(&q, &lq));
    let q_there = wait_for(LIMIT, "Syncthing to add Q, introduced by P, and share f with it", || async {
        let devices = st.try_get("/rest/config/devices").await?;
        let qd = devices.as_array()?.iter().find(|d| d["deviceID"] == idq.as_str())?.clone();
        let folder = st.try_get("/rest/config/folders/f").await?;
        let shared = folder["devices"].as_array()?.iter().any(|d| d["deviceID"] == idq.as_str());
        shared.then_some(qd)
    })
    .await;
    assert_eq!(q_there["introducedBy"], idp.as_str(), "{q_there}");
    assert!(q_there["addresses"].as_array().unwrap().iter().any(|a| a == lq.as_str()), "{q_there}");
}

#[tokio::test(flavor = "multi_thread")]
async fn peerfold_as_introducer_for_syncthing_over_quic() {
    peerfold_introduces("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn peerfold_as_introducer_for_syncthing_over_tcp() {
    peerfold_introduces("tcp").await;
}
