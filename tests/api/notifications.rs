//! Notifications to internal subscribers: signed, at least once, retried while the subscriber
//! fails, and in order per user once it recovers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, KeyInit, Mac};
use onboarding_gateway::settings::SubscriberSettings;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::*;

const SECRET: &str = "whsec_test_subscriber";

/// A notification subscriber: a real HTTP server that records what it is sent (or answers 503
/// while `failing`).
#[derive(Default)]
pub(crate) struct Receiver {
    pub(crate) failing: AtomicBool,
    pub(crate) attempts: Mutex<usize>,
    pub(crate) delivered: Mutex<Vec<(String, Value)>>,
}

/// Starts a [`Receiver`] on a free port; notifications go to `http://127.0.0.1:{port}/hooks`.
pub(crate) fn spawn_receiver(failing: bool) -> (Arc<Receiver>, u16) {
    let receiver = Arc::new(Receiver::default());
    receiver.failing.store(failing, Ordering::SeqCst);
    let state = web::Data::new(receiver.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/hooks", web::post().to(receive))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (receiver, port)
}

/// A subscriber of every event type, signed with the test secret.
pub(crate) fn subscriber(port: u16) -> SubscriberSettings {
    SubscriberSettings {
        url: format!("http://127.0.0.1:{port}/hooks"),
        secret: SECRET.to_owned().into(),
        events: vec![
            "user.created".into(),
            "user.updated".into(),
            "user.status_changed".into(),
            "link.submission_failed".into(),
        ],
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Receiver>>,
) -> HttpResponse {
    *state.attempts.lock().unwrap() += 1;
    if state.failing.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let signature = req
        .headers()
        .get("gateway-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.delivered.lock().unwrap().push((
        signature,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ));
    // Keep the raw body for signature checks.
    state.delivered.lock().unwrap().last_mut().unwrap().1["__raw"] =
        json!(String::from_utf8_lossy(&body));
    HttpResponse::Ok().finish()
}

fn verify(header: &str, raw: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{raw}").as_bytes());
    hex::encode(mac.finalize().into_bytes()) == v1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_receives_everything_in_order_once_it_recovers() {
    let (receiver, port) = spawn_receiver(true);

    let db = TestDatabase::create().await;
    let config_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let routing = onboarding_gateway::settings::Settings::load_from_dir(&config_dir, "test")
        .unwrap()
        .routing;
    let app = spawn_app_with(db, move |s| {
        s.routing = routing;
        s.workers.poll_interval_ms = 50;
        s.workers.retry_base_ms = 100;
        s.workers.retry_max_secs = 1;
        s.workers.max_attempts = 100;
        s.notifications.subscribers.push(subscriber(port));
    })
    .await;

    let mut ids = Vec::new();
    for (country, email) in [
        ("DE", "n1+approve@example.com"),
        ("US", "n2+approve@example.com"),
    ] {
        let mut user = sample_user();
        user["email"] = json!(email);
        user["address"]["country"] = json!(country);
        let created = app.create_user(&user).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let patched = app.patch_user(&ids[0], &json!({"language": "en"})).await;
    assert_eq!(patched.status(), 200);

    // The subscriber fails for a while: deliveries are retried, nothing is lost.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        *receiver.attempts.lock().unwrap() > 0,
        "deliveries were attempted while failing"
    );
    receiver.failing.store(false, Ordering::SeqCst);

    let expected = [
        (
            0usize,
            vec!["user.created", "user.status_changed", "user.updated"],
        ),
        (1usize, vec!["user.created", "user.status_changed"]),
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = receiver.delivered.lock().unwrap().clone();
        let per_user = |i: usize| -> Vec<String> {
            delivered
                .iter()
                .filter(|(_, n)| n["data"]["user_id"] == ids[i])
                .map(|(_, n)| n["type"].as_str().unwrap().to_owned())
                .collect()
        };
        if expected
            .iter()
            .all(|(i, want)| per_user(*i).len() >= want.len())
        {
            for (i, want) in &expected {
                assert_eq!(&per_user(*i), want, "in order, once each, for user {i}");
            }
            for (signature, notification) in &delivered {
                assert!(
                    verify(signature, notification["__raw"].as_str().unwrap()),
                    "signed"
                );
                assert!(notification["id"].is_string() && notification["created_at"].is_string());
            }
            let status = delivered
                .iter()
                .find(|(_, n)| n["type"] == "user.status_changed" && n["data"]["user_id"] == ids[0])
                .unwrap();
            assert_eq!(status.1["data"]["provider"], "carbn");
            assert_eq!(status.1["data"]["status"], "approved");
            assert_eq!(status.1["data"]["previous_status"], "pending_submission");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivered so far: {delivered:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each attempt is in the user's trail (recorded once the subscriber has answered), the
    // failed ones with their HTTP status, the last with 200.
    loop {
        let trail = events(&app, &ids[1]).await;
        let sent: Vec<&Value> = trail
            .iter()
            .filter(|e| e["type"] == "notification_sent")
            .collect();
        if sent.iter().any(|e| e["http_status"] == 200) {
            for event in &sent {
                assert_eq!(event["category"], "notification");
                assert!(event["notification_id"].is_string(), "{event}");
                assert!(event["subscriber"].is_string(), "{event}");
                assert!(event["attempt"].as_i64().unwrap() >= 1, "{event}");
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no successful notification_sent yet: {trail:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
