//! The database goes away under load and comes back: Postgres itself is stopped (`pg_ctl stop
//! -m fast`) for 30 s while a careful client keeps creating users, then started again. The test
//! runs its own throwaway cluster (through `scripts/lib/postgres.sh`, as `scripts/test.sh` makes
//! one), so stopping it disturbs no other test.
//!
//! It holds when: readiness answers 503 as soon as the server is gone; every API answer while it
//! is down is a prompt 503 problem document (never a 500, never a hang past
//! `database.acquire_timeout_secs`); every create acknowledged before or after the outage is
//! there afterwards, once; and the gateway recovers without a restart: its pool reconnects, the
//! job workers submit every link, the poller runs reconciliation passes again (the advisory lock
//! died with its connection), and the notification dispatcher's cursor delivers every user's
//! `user.created`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;
use crate::notifications::{spawn_receiver, subscriber};

/// How long the server stays down.
const OUTAGE: Duration = Duration::from_secs(30);
/// The pool's acquire timeout in this test: no answer may take much longer than this.
const ACQUIRE_TIMEOUT_SECS: u64 = 2;
/// A request still unanswered after this long counts as hung (the acquire timeout plus a margin
/// for a loaded machine; the provider simulators answer in milliseconds).
const HUNG_AFTER: Duration = Duration::from_secs(ACQUIRE_TIMEOUT_SECS + 8);

/// A PostgreSQL cluster of this test's own, made and driven by the repository's own
/// `scripts/lib/postgres.sh` (step d: a trust-auth throwaway cluster), removed on drop.
struct OwnCluster {
    dir: PathBuf,
    port: u16,
    admin_url: String,
}

impl OwnCluster {
    fn create() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("gw-db-restart-{}", Uuid::new_v4().simple()));
        let mut cluster = Self {
            dir,
            port,
            admin_url: String::new(),
        };
        cluster.admin_url = cluster.script("ensure_postgres && printf %s \"$PG_ADMIN_URL\"");
        cluster
    }

    /// Runs `body` in bash after sourcing the library, pointed at this cluster; its stdout.
    fn script(&self, body: &str) -> String {
        let library =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/postgres.sh");
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("source \"$0\" && {body}"))
            .arg(&library)
            .env_remove("DATABASE_URL")
            .env("GATEWAY_PG_FORCE_LOCAL", "1")
            .env("GATEWAY_PG_DIR", &self.dir)
            .env("GATEWAY_PG_PORT", self.port.to_string())
            .output()
            .expect("bash runs");
        assert!(
            output.status.success(),
            "scripts/lib/postgres.sh `{body}` failed (this test needs the PostgreSQL server \
             binaries that scripts/test.sh installs): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn stop(&self) {
        self.script("stop_local_postgres");
    }

    fn start(&self) {
        self.script("ensure_postgres");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.stop());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the client was told, and everything else it saw.
#[derive(Default)]
struct Ledger {
    /// (idempotency key, user id) of every acknowledged create.
    acknowledged: Mutex<Vec<(String, String)>>,
    /// Answers by status code.
    statuses: Mutex<HashMap<u16, usize>>,
    /// Answers a careful client must never get (5xx other than 503, unexpected 4xx, hangs).
    wrong: Mutex<Vec<String>>,
    /// The slowest answer seen, by status.
    slowest: Mutex<HashMap<u16, Duration>>,
}

impl Ledger {
    fn saw(&self, status: u16, took: Duration) {
        *self.statuses.lock().unwrap().entry(status).or_default() += 1;
        let mut slowest = self.slowest.lock().unwrap();
        let slowest = slowest.entry(status).or_default();
        *slowest = (*slowest).max(took);
    }
}

/// A user for one of the three providers (by its country), unique by e-mail and external id.
fn user_for(n: usize) -> Value {
    let mut user = sample_user();
    let country = ["DE", "US", "CO"][n % 3];
    user["email"] = json!(format!(
        "restart.{n}.{}@example.com",
        Uuid::new_v4().simple()
    ));
    user["address"]["country"] = json!(country);
    user["identity_document"]["issuing_country"] = json!(country);
    if country == "CO" {
        user["address"]["region"] = json!("BOG");
    }
    user
}

/// Creates one user as a careful client does: one `Idempotency-Key`, retried with the same key
/// on 503, on "in progress" and on connection errors, until it is acknowledged.
async fn careful_create(app: &TestApp, ledger: &Ledger, body: &Value) {
    let key = Uuid::new_v4().to_string();
    loop {
        let started = Instant::now();
        let sent = app
            .client
            .post(app.url("/v1/users"))
            .bearer_auth(DEV_KEY)
            .header("idempotency-key", &key)
            .timeout(HUNG_AFTER)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                ledger
                    .wrong
                    .lock()
                    .unwrap()
                    .push(format!("a create hung for {HUNG_AFTER:?}"));
                return;
            }
            Err(_) => {
                // Connection refused or reset: the gateway itself never goes away in this test,
                // but a client would retry, so this one does too.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let status = response.status().as_u16();
        ledger.saw(status, started.elapsed());
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            201 => {
                let id = answer["id"].as_str().unwrap().to_owned();
                ledger.acknowledged.lock().unwrap().push((key, id));
                return;
            }
            503 => tokio::time::sleep(Duration::from_millis(200)).await,
            409 if answer["code"] == "idempotency_request_in_progress" => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            _ => {
                ledger
                    .wrong
                    .lock()
                    .unwrap()
                    .push(format!("create answered {status}: {answer}"));
                return;
            }
        }
    }
}

async fn ready_status(app: &TestApp) -> u16 {
    app.client
        .get(app.url("/health/ready"))
        .timeout(HUNG_AFTER)
        .send()
        .await
        .expect("readiness answers")
        .status()
        .as_u16()
}

/// Waits for `condition` (polled every 200 ms) up to `limit`, or panics with `what`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_loses_nothing_and_heals_itself() {
    let cluster = OwnCluster::create();
    let db = TestDatabase::create_on(&database_on(&cluster.admin_url, "postgres")).await;
    let (receiver, port) = spawn_receiver(false);
    let app = spawn_app_with(db, move |s| {
        s.routing = configured_routing();
        s.database.acquire_timeout_secs = ACQUIRE_TIMEOUT_SECS;
        s.workers.poll_interval_ms = 100;
        s.workers.retry_base_ms = 200;
        s.workers.retry_max_secs = 2;
        s.workers.max_attempts = 100;
        s.workers.reconcile_interval_secs = 1;
        s.notifications.subscribers.push(subscriber(port));
    })
    .await;
    assert_eq!(ready_status(&app).await, 200);

    // Load: two careful clients creating users back to back until told to stop.
    let ledger = Arc::new(Ledger::default());
    let app = Arc::new(app);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|client| {
            let (app, ledger, stop) = (app.clone(), ledger.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = client;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    careful_create(&app, &ledger, &user_for(n)).await;
                    n += 2;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    eventually(
        Duration::from_secs(30),
        "creates are acknowledged before the outage",
        || async { ledger.acknowledged.lock().unwrap().len() >= 3 },
    )
    .await;

    cluster.stop();
    let stopped = Instant::now();
    // Creates in flight while `pg_ctl stop` ran may have been acknowledged: they count as before.
    let before_outage = ledger.acknowledged.lock().unwrap().len();
    assert_eq!(ready_status(&app).await, 503, "readiness sees the stop");
    println!(
        "readiness answered 503 {:?} after the server stopped",
        stopped.elapsed()
    );
    // While it is down: readiness stays 503 and every API answer is a prompt 503 problem.
    while stopped.elapsed() < OUTAGE {
        assert_eq!(ready_status(&app).await, 503);
        let started = Instant::now();
        let response = app
            .client
            .get(app.url("/v1/users"))
            .bearer_auth(DEV_KEY)
            .timeout(HUNG_AFTER)
            .send()
            .await
            .expect("a read during the outage answers before it counts as hung");
        ledger.saw(response.status().as_u16(), started.elapsed());
        assert_problem(response, 503, "service_unavailable").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let acknowledged_during = ledger.acknowledged.lock().unwrap().len() - before_outage;

    cluster.start();
    let restarted = Instant::now();
    let restarted_at = time::OffsetDateTime::now_utc();
    eventually(
        Duration::from_secs(30),
        "readiness returns to 200",
        || async { ready_status(&app).await == 200 },
    )
    .await;
    println!(
        "readiness answered 200 {:?} after the server started",
        restarted.elapsed()
    );
    // The clients go on for a while, then finish what they were doing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    let wrong = ledger.wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "answers a careful client must not get: {wrong:?}"
    );
    let acknowledged = ledger.acknowledged.lock().unwrap().clone();
    println!(
        "acknowledged {} creates ({before_outage} before the stop, {acknowledged_during} while \
         down); answers by status {:?}; slowest answer by status {:?}",
        acknowledged.len(),
        ledger.statuses.lock().unwrap(),
        ledger.slowest.lock().unwrap()
    );
    assert!(
        acknowledged.len() > before_outage,
        "creates were acknowledged after the restart"
    );

    // Nothing acknowledged is lost, nothing is there twice.
    let ids: HashSet<&str> = acknowledged.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        ids.len(),
        acknowledged.len(),
        "one user per acknowledged key"
    );
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let stored: HashSet<String> = stored.iter().map(Uuid::to_string).collect();
    let lost: Vec<&&str> = ids.iter().filter(|id| !stored.contains(**id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(
        stored.len(),
        ids.len(),
        "every stored user was acknowledged to its client (no half-done create left behind)"
    );

    // The workers came back: every link reaches its provider, no job is left running or failed.
    eventually(Duration::from_secs(60), "every link submitted", || async {
        let (total, submitted): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(provider_user_id) FROM provider_links")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        total == ids.len() as i64 && submitted == total
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "no job running, queued for a link, or failed",
        || async {
            let stuck: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE state IN ('running', 'failed')
                    OR (state = 'queued' AND kind <> 'notify')",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            stuck == 0
        },
    )
    .await;

    // The reconciliation poller runs passes again: its advisory lock died with its connection.
    eventually(
        Duration::from_secs(20),
        "a poller pass started after the restart finishes",
        || async {
            let passes: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM reconciliation_runs
                  WHERE trigger = 'poll' AND started_at > $1 AND finished_at IS NOT NULL",
            )
            .bind(restarted_at)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            passes > 0
        },
    )
    .await;

    // The notification cursor moved on: every acknowledged user's `user.created` arrives.
    eventually(
        Duration::from_secs(60),
        "every acknowledged user's user.created delivered",
        || async {
            let delivered = receiver.delivered.lock().unwrap();
            let created: HashSet<&str> = delivered
                .iter()
                .filter(|(_, n)| n["type"] == "user.created")
                .filter_map(|(_, n)| n["data"]["user_id"].as_str())
                .collect();
            ids.iter().all(|id| created.contains(id))
        },
    )
    .await;
}
