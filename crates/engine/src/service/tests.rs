//! The service on a temporary home: the offline backend alone, and the same requests answered
//! alike with and without a running engine.

use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::db::Index;
use crate::engine::Engine;

fn dev(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 32])
}

/// A home with a configuration file (one folder "f", shared with device 2) and an index
/// holding one pending device (3) and one folder offer ("g" from device 2).
async fn home() -> (tempfile::TempDir, PathBuf, Index) {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("config.toml");
    let root = dir.path().join("f");
    std::fs::create_dir_all(&root).unwrap();
    let mut config = Config::default();
    config.edit(dev(1), Edit::AddDevice { id: dev(2), name: Some("nas".into()), addresses: None }).unwrap();
    let folder = FolderConfig { devices: vec![dev(2)], ..FolderConfig::new("f".parse().unwrap(), root) };
    config.edit(dev(1), Edit::AddFolder { folder: Box::new(folder) }).unwrap();
    config.save(&config_file).unwrap();
    let index = Index::open(&dir.path().join("index.db")).await.unwrap();
    let pending = crate::db::PendingDevice {
        device: dev(3),
        name: "phone".into(),
        address: "tcp://1.2.3.4:5".into(),
        seen_at: 7,
    };
    index.add_pending_device(&pending).await.unwrap();
    let offer =
        crate::db::PendingFolder { device: dev(2), folder: "g".into(), label: "G".into(), seen_at: 8 };
    index.add_pending_folder(&offer).await.unwrap();
    (dir, config_file, index)
}

#[tokio::test]
async fn offline_answers_from_the_home_and_refuses_what_needs_a_daemon() {
    let (_dir, config_file, index) = home().await;
    let offline = Offline::new(dev(1), &config_file, index);
    let pending: Pending = call(&offline, Request::Pending).await.unwrap();
    assert_eq!((pending.devices.len(), pending.folders.len()), (1, 1));
    assert_eq!(pending.devices[0].name, "phone");

    let f: FolderId = "f".parse().unwrap();
    let refused = call::<Edited>(&offline, Request::Revert { folder: f.clone() }).await.unwrap_err();
    assert!(matches!(refused, ServiceError::NeedsDaemon(_)), "{refused:?}");
    assert!(refused.to_string().contains("only while Peerfold runs"), "{refused}");

    let nope: FolderId = "nope".parse().unwrap();
    let missing = call::<IgnoreLines>(&offline, Request::Ignores { folder: nope }).await.unwrap_err();
    assert_eq!(missing, ServiceError::NotFound("there is no folder with ID \"nope\"".into()));
    assert_eq!((missing.http_status(), missing.exit_code()), (404, 1));

    // Dismissing an offer that is not there is "not found", and the one that is stays.
    let request = Request::DismissFolder { folder: "g".parse().unwrap(), device: Some(dev(3)) };
    let not_offered = call::<Edited>(&offline, request).await.unwrap_err();
    assert_eq!(not_offered, ServiceError::NotFound("no offer of folder \"g\" is pending".into()));
    let pending: Pending = call(&offline, Request::Pending).await.unwrap();
    assert_eq!(pending.folders.len(), 1);

    // A change is saved to the configuration file and settles the pending device.
    let accepted: Edited =
        call(&offline, Request::AcceptDevice { device: dev(3), name: None, addresses: None }).await.unwrap();
    assert!(accepted.changed, "{accepted:?}");
    let devices: Vec<DeviceView> = call(&offline, Request::Devices).await.unwrap();
    assert!(devices.iter().any(|d| d.id == dev(3).to_string() && d.name == "phone"), "{devices:?}");
    assert!(Config::load(&config_file).unwrap().device(&dev(3)).is_some());
    let pending: Pending = call(&offline, Request::Pending).await.unwrap();
    assert!(pending.devices.is_empty());

    // Asking for the wrong answer type is an error, not a panic.
    let wrong = call::<Pending>(&offline, Request::Folders).await.unwrap_err();
    assert!(matches!(wrong, ServiceError::Failed(_)), "{wrong:?}");
    offline.close().await;
}

#[test]
fn requests_responses_and_errors_travel_as_json() {
    let request = Request::Needed { folder: "f".parse().unwrap() };
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(json, serde_json::json!({ "command": "needed", "folder": "f" }));
    assert_eq!(serde_json::from_value::<Request>(json).unwrap(), request);
    let response = Response::Edited(Edited { changed: true, message: "done".into() });
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json, serde_json::json!({ "type": "edited", "body": { "changed": true, "message": "done" } }));
    let back: Edited = FromResponse::from_response(serde_json::from_value(json).unwrap()).unwrap();
    assert_eq!(back.message, "done");
    let error = ServiceError::NotFound("gone".into());
    let json = serde_json::to_value(&error).unwrap();
    assert_eq!(json, serde_json::json!({ "kind": "not-found", "error": "gone" }));
    assert_eq!(serde_json::from_value::<ServiceError>(json).unwrap(), error);
}

/// The same requests give the same answers from the running engine and from the home alone.
#[tokio::test]
async fn running_and_offline_answer_alike() {
    let (_dir, config_file, index) = home().await;
    let f: FolderId = "f".parse().unwrap();
    let requests = || {
        vec![
            Request::Pending,
            Request::Devices,
            Request::Folders,
            Request::Ignores { folder: f.clone() },
            Request::Needed { folder: f.clone() },
            Request::Conflicts { folder: None },
            Request::FailedItems { folder: f.clone() },
            Request::Ignores { folder: "nope".parse().unwrap() },
            Request::DismissDevice { device: dev(9) },
            Request::DismissFolder { folder: "g".parse().unwrap(), device: Some(dev(3)) },
            Request::UpdateDevice {
                device: dev(9),
                name: None,
                addresses: None,
                paused: Some(true),
                max_send_kibps: None,
                max_recv_kibps: None,
            },
        ]
    };
    let offline = Offline::new(dev(1), &config_file, index.clone());
    let mut answers = Vec::new();
    for request in requests() {
        let answer = offline.handle(request).await;
        answers.push(answer.map(|r| serde_json::to_value(r).unwrap()));
    }
    let config = Config::load(&config_file).unwrap();
    let engine = Arc::new(Engine::start(&config, index, dev(1)).with_config_file(config_file.clone()));
    let running = Running::new(Arc::clone(&engine), dev(1));
    for (request, offline_answer) in requests().into_iter().zip(answers) {
        let answer = running.handle(request.clone()).await.map(|r| serde_json::to_value(r).unwrap());
        assert_eq!(answer, offline_answer, "{request:?}");
    }
    drop(running);
    if let Ok(engine) = Arc::try_unwrap(engine) {
        engine.shutdown().await;
    }
}
