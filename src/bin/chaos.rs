//! `chaos`: the load generator, fault schedule and audit behind `scripts/chaos.sh` (README
//! "Reliability").
//!
//! It starts the gateway instances itself (so it can `kill -9` and restart them), runs two
//! notification subscribers, drives a careful client's load (creates with an `Idempotency-Key`,
//! retried with the same key; patches; a second provider; erasures) while faults follow a
//! schedule drawn from a fixed seed, then stops the faults, lets the queue drain, runs a
//! reconciliation pass and audits what the client was told against the gateway's database and
//! the simulator's own accounts. One table on stdout, the same as JSON in `CHAOS_OUT`; exit
//! status 1 when anything was lost or duplicated.
//!
//! Settings come from the environment (the script sets them): `CHAOS_SIM_URL`,
//! `CHAOS_GATEWAY_BIN`, `CHAOS_GATEWAY_PORTS` (comma-separated, one instance each; the gateway's
//! own settings are inherited from this process's environment), `CHAOS_DATABASE_URL`,
//! `CHAOS_PG_RESTART` (a shell command restarting Postgres at once; empty: no restart),
//! `CHAOS_SUBSCRIBER_PORTS` and `CHAOS_SUBSCRIBER_SECRET` (as configured in the gateway),
//! `CHAOS_FAULT_SECS`, `CHAOS_DRAIN_SECS`, `CHAOS_SEED`, `CHAOS_CLIENTS`, `CHAOS_OUT`,
//! `CHAOS_LOG_DIR`, `CHAOS_PIDS_FILE` (the instances' pids, for the script's clean-up),
//! `CHAOS_API_KEY`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::Sha256;

use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::onboarding::notify::{self, SIGNATURE_HEADER, TRAIL_TYPES};
use onboarding_gateway::store::notifications::TrailEvent;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(Env::from_env())) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("chaos: {error}");
            std::process::exit(2);
        }
    }
}

fn note(message: impl AsRef<str>) {
    eprintln!("chaos: {}", message.as_ref());
}

struct Env {
    sim: String,
    gateway_bin: String,
    ports: Vec<u16>,
    database_url: String,
    pg_restart: Option<String>,
    subscriber_ports: Vec<u16>,
    subscriber_secret: String,
    fault_secs: u64,
    drain_secs: u64,
    seed: u64,
    clients: usize,
    out: String,
    log_dir: String,
    pids_file: Option<String>,
    key: String,
}

impl Env {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let need = |name: &str| var(name).unwrap_or_else(|| panic!("{name} is not set"));
        let num = |name: &str, default: u64| {
            var(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} must be a number"))
            })
        };
        let ports = |name: &str| -> Vec<u16> {
            need(name)
                .split(',')
                .map(|p| p.trim().parse().unwrap_or_else(|_| panic!("{name}: ports")))
                .collect()
        };
        Self {
            sim: need("CHAOS_SIM_URL"),
            gateway_bin: need("CHAOS_GATEWAY_BIN"),
            ports: ports("CHAOS_GATEWAY_PORTS"),
            database_url: need("CHAOS_DATABASE_URL"),
            pg_restart: var("CHAOS_PG_RESTART"),
            subscriber_ports: ports("CHAOS_SUBSCRIBER_PORTS"),
            subscriber_secret: need("CHAOS_SUBSCRIBER_SECRET"),
            fault_secs: num("CHAOS_FAULT_SECS", 480),
            drain_secs: num("CHAOS_DRAIN_SECS", 120),
            seed: num("CHAOS_SEED", 14),
            clients: num("CHAOS_CLIENTS", 12) as usize,
            out: var("CHAOS_OUT").unwrap_or_else(|| "target/chaos/results.json".into()),
            log_dir: var("CHAOS_LOG_DIR").unwrap_or_else(|| "target/chaos".into()),
            pids_file: var("CHAOS_PIDS_FILE"),
            key: var("CHAOS_API_KEY").unwrap_or_else(|| "dev_sk_onboarding_gateway_local".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway instances

/// The gateway processes this run started; each is killed (SIGKILL) when dropped.
struct Instances {
    bin: String,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    log_dir: String,
    pids_file: Option<String>,
}

impl Instances {
    fn new(env: &Env) -> Self {
        Self {
            bin: env.gateway_bin.clone(),
            ports: env.ports.clone(),
            children: env.ports.iter().map(|_| None).collect(),
            log_dir: env.log_dir.clone(),
            pids_file: env.pids_file.clone(),
        }
    }

    fn start(&mut self, i: usize) -> std::io::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}/gateway-{i}.log", self.log_dir))?;
        let child = Command::new(&self.bin)
            .env("GATEWAY__SERVER__PORT", self.ports[i].to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.children[i] = Some(child);
        self.write_pids();
        Ok(())
    }

    /// `kill -9`: no shutdown, leases and connections left as they were.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.write_pids();
    }

    fn is_running(&mut self, i: usize) -> bool {
        self.children[i]
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn write_pids(&self) {
        if let Some(path) = &self.pids_file {
            let pids: Vec<String> = self
                .children
                .iter()
                .flatten()
                .map(|c| c.id().to_string())
                .collect();
            let _ = std::fs::write(path, pids.join("\n"));
        }
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

async fn wait_ready(http: &reqwest::Client, base: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let ok = http
            .get(format!("{base}/health/ready"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Notification subscribers

/// What one subscriber received: every delivery in arrival order, and what it refused.
#[derive(Default)]
struct Inbox {
    deliveries: Vec<Value>,
    bad_signatures: u64,
    refused_while_failing: u64,
}

struct Subscriber {
    inbox: Mutex<Inbox>,
    failing: AtomicBool,
    secret: String,
}

fn signature_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    let parts: HashMap<&str, &str> = header
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn receive(
    subscriber: web::Data<Subscriber>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut inbox = subscriber.inbox.lock().expect("inbox");
    if !signature_ok(&subscriber.secret, header, &body) {
        inbox.bad_signatures += 1;
        return HttpResponse::Unauthorized().finish();
    }
    if subscriber.failing.load(Ordering::Relaxed) {
        inbox.refused_while_failing += 1;
        return HttpResponse::ServiceUnavailable().finish();
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(notification) => {
            inbox.deliveries.push(notification);
            HttpResponse::NoContent().finish()
        }
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

fn start_subscriber(port: u16, secret: &str) -> std::io::Result<Arc<Subscriber>> {
    let subscriber = Arc::new(Subscriber {
        inbox: Mutex::new(Inbox::default()),
        failing: AtomicBool::new(false),
        secret: secret.to_owned(),
    });
    let data = web::Data::from(Arc::clone(&subscriber));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::post().to(receive))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", port))?
    .run();
    tokio::spawn(server);
    Ok(subscriber)
}

// ---------------------------------------------------------------------------------------------
// The careful client

/// One answer the gateway gave (5xx only are kept with their time, for the database window).
#[derive(Default)]
struct Answers {
    by_status: BTreeMap<u16, u64>,
    /// (seconds since the start, status) of every 5xx.
    server_errors: Vec<(f64, u16)>,
    transport_errors: u64,
}

struct Client {
    http: reqwest::Client,
    bases: Vec<String>,
    auth: String,
    started: Instant,
    answers: Mutex<Answers>,
    /// How long one operation is retried before the client gives up on it.
    patience: Duration,
}

/// How an operation ended: the final answer, or given up after `patience`.
enum Outcome {
    Answer(u16, Value),
    GaveUp,
}

impl Client {
    /// Sends the request to instance `first`, then to the others in turn, retrying with the same
    /// body and `Idempotency-Key` on 5xx, 429, `idempotency_request_in_progress`, timeouts and
    /// connection errors, as a careful client would.
    async fn call(
        &self,
        first: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, String)>,
        key: Option<&str>,
    ) -> Outcome {
        let give_up = Instant::now() + self.patience;
        let mut attempt = 0usize;
        loop {
            let base = &self.bases[(first + attempt) % self.bases.len()];
            let mut request = self
                .http
                .request(method.clone(), format!("{base}{path}"))
                .header("authorization", &self.auth);
            if let Some((content_type, body)) = &body {
                request = request
                    .header("content-type", *content_type)
                    .body(body.clone());
            }
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let retry = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let value: Value = response.json().await.unwrap_or(Value::Null);
                    {
                        let mut answers = self.answers.lock().expect("answers");
                        *answers.by_status.entry(status).or_default() += 1;
                        if status >= 500 {
                            let at = self.started.elapsed().as_secs_f64();
                            answers.server_errors.push((at, status));
                        }
                    }
                    let in_progress =
                        status == 409 && value["code"] == "idempotency_request_in_progress";
                    if status >= 500 || status == 429 || status == 408 || in_progress {
                        true
                    } else {
                        return Outcome::Answer(status, value);
                    }
                }
                Err(_) => {
                    self.answers.lock().expect("answers").transport_errors += 1;
                    true
                }
            };
            debug_assert!(retry);
            if Instant::now() >= give_up {
                return Outcome::GaveUp;
            }
            attempt += 1;
            let backoff = Duration::from_millis(200 << attempt.min(3));
            tokio::time::sleep(backoff).await;
        }
    }
}

/// What the client knows of one user it created.
#[derive(Debug, Clone, serde::Serialize)]
struct ClientUser {
    n: u64,
    key: String,
    /// Every user id an answer to this key named (more than one is a duplicate).
    ids: BTreeSet<String>,
    /// Providers the client was told the user is linked to.
    providers: Vec<String>,
    /// The last acknowledged patch: (city, phone).
    patched: Option<(String, String)>,
    /// A patch was given up on: what the provider holds is not known.
    patch_unknown: bool,
    erased: bool,
    /// A 409 `user_already_exists` answered a retry of the create's key.
    idempotency_miss: bool,
}

impl ClientUser {
    fn id(&self) -> Option<&str> {
        self.ids.iter().next().map(String::as_str)
    }
}

#[derive(Default)]
struct ClientTally {
    creates_sent: u64,
    creates_given_up: u64,
    erase_answers_not_receipts: Vec<String>,
    unexpected: BTreeMap<String, u64>,
}

fn external_id(run: &str, n: u64) -> String {
    format!("chaos-{run}-{n}")
}

/// A canonical user every provider takes (so a second provider can be linked), unique by `n`.
fn create_body(run: &str, provider: ProviderId, n: u64) -> String {
    let external_id = external_id(run, n);
    json!({
        "type": "individual",
        "external_id": external_id,
        "email": format!("{external_id}+approve@example.com"),
        "phone": format!("+49160{:08}", n % 100_000_000),
        "name": {"first": "Chaos", "last": format!("Client{n}")},
        "date_of_birth": "1988-04-02",
        "nationalities": ["DE"],
        "address": {"line1": "Torstr. 5", "city": "Berlin", "region": "BE",
                    "postal_code": "10119", "country": "DE"},
        "identity_document": {"type": "passport", "number": format!("K{:08}", n % 100_000_000),
                              "issuing_country": "DE"},
        "employment": {"status": "employed", "industry": "computers_and_it",
                       "occupation": "Engineer", "employer_name": "Chaos GmbH"},
        "terms": {"version": 3, "accepted_at": "2026-11-01T09:30:00Z"},
        "providers": [provider.as_str()],
    })
    .to_string()
}

struct Load {
    client: Arc<Client>,
    run: String,
    until: Instant,
    tally: Mutex<ClientTally>,
    next_n: std::sync::atomic::AtomicU64,
}

/// One client task: its own users only (so its patches to a user are in order), until `until`.
async fn client_task(load: Arc<Load>, worker: usize, seed: u64) -> Vec<ClientUser> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut users: Vec<ClientUser> = Vec::new();
    let mut patch_seq = 0u64;
    while Instant::now() < load.until {
        let first = rng.random_range(0..load.client.bases.len());
        let live: Vec<usize> = (0..users.len())
            .filter(|&i| !users[i].erased && users[i].id().is_some())
            .collect();
        let roll: f64 = rng.random();
        if live.is_empty() || roll < 0.45 {
            let n = load.next_n.fetch_add(1, Ordering::Relaxed);
            let provider = ProviderId::ALL[rng.random_range(0..ProviderId::ALL.len())];
            let key = format!("chaos-{}-create-{n}", load.run);
            let body = create_body(&load.run, provider, n);
            let mut user = ClientUser {
                n,
                key: key.clone(),
                ids: BTreeSet::new(),
                providers: vec![provider.as_str().to_owned()],
                patched: None,
                patch_unknown: false,
                erased: false,
                idempotency_miss: false,
            };
            load.tally.lock().expect("tally").creates_sent += 1;
            // Each answer is read separately, so that a retry answered with another user id
            // (a duplicate) is seen.
            match load
                .client
                .call(
                    first,
                    reqwest::Method::POST,
                    "/v1/users",
                    Some(("application/json", body)),
                    Some(&key),
                )
                .await
            {
                Outcome::Answer(200 | 201, value) => {
                    if let Some(id) = value["id"].as_str() {
                        user.ids.insert(id.to_owned());
                    }
                }
                Outcome::Answer(409, value) if value["code"] == "user_already_exists" => {
                    user.idempotency_miss = true;
                    if let Some(id) = value["existing_user_id"].as_str() {
                        user.ids.insert(id.to_owned());
                    }
                }
                Outcome::Answer(status, value) => {
                    unexpected(&load, format!("create {status} {}", value["code"]));
                }
                Outcome::GaveUp => load.tally.lock().expect("tally").creates_given_up += 1,
            }
            // Replaying the key must name the same user (a careful client may ask again).
            if user.id().is_some() && rng.random_bool(0.2) {
                let body = create_body(&load.run, provider, n);
                if let Outcome::Answer(200 | 201, value) = load
                    .client
                    .call(
                        first + 1,
                        reqwest::Method::POST,
                        "/v1/users",
                        Some(("application/json", body)),
                        Some(&key),
                    )
                    .await
                {
                    if let Some(id) = value["id"].as_str() {
                        user.ids.insert(id.to_owned());
                    }
                }
            }
            users.push(user);
        } else {
            let i = live[rng.random_range(0..live.len())];
            let id = users[i].id().expect("live users have an id").to_owned();
            if roll < 0.70 {
                patch_seq += 1;
                let city = format!("Potsdam W{worker}P{patch_seq}");
                let phone = format!("+49170{:08}", (worker as u64) * 1_000_000 + patch_seq);
                let body = json!({"phone": phone, "address": {"city": city}}).to_string();
                let key = format!("chaos-{}-patch-{worker}-{patch_seq}", load.run);
                match load
                    .client
                    .call(
                        first,
                        reqwest::Method::PATCH,
                        &format!("/v1/users/{id}"),
                        Some(("application/merge-patch+json", body)),
                        Some(&key),
                    )
                    .await
                {
                    Outcome::Answer(200, _) => {
                        users[i].patched = Some((city, phone));
                        users[i].patch_unknown = false;
                    }
                    Outcome::Answer(status, value) => {
                        users[i].patch_unknown = true;
                        unexpected(&load, format!("patch {status} {}", value["code"]));
                    }
                    Outcome::GaveUp => users[i].patch_unknown = true,
                }
            } else if roll < 0.85 {
                if users[i].providers.len() >= 2 {
                    continue;
                }
                let have = users[i].providers[0].clone();
                let others: Vec<&ProviderId> = ProviderId::ALL
                    .iter()
                    .filter(|p| p.as_str() != have)
                    .collect();
                let provider = others[rng.random_range(0..others.len())].as_str();
                match load
                    .client
                    .call(
                        first,
                        reqwest::Method::POST,
                        &format!("/v1/users/{id}/providers"),
                        Some((
                            "application/json",
                            json!({"provider": provider}).to_string(),
                        )),
                        None,
                    )
                    .await
                {
                    // 409: a retry after the first attempt landed.
                    Outcome::Answer(200 | 201, _) => users[i].providers.push(provider.into()),
                    Outcome::Answer(409, value) if value["code"] == "link_already_exists" => {
                        users[i].providers.push(provider.into())
                    }
                    Outcome::Answer(status, value) => {
                        unexpected(&load, format!("link {status} {}", value["code"]));
                    }
                    Outcome::GaveUp => unexpected(&load, "link given up".into()),
                }
            } else if roll < 0.92 {
                match load
                    .client
                    .call(
                        first,
                        reqwest::Method::DELETE,
                        &format!("/v1/users/{id}"),
                        None,
                        None,
                    )
                    .await
                {
                    Outcome::Answer(status @ (200 | 202), value) => {
                        users[i].erased = true;
                        if !value["links"].is_array() {
                            load.tally
                                .lock()
                                .expect("tally")
                                .erase_answers_not_receipts
                                .push(format!("{status} {value}"));
                        }
                    }
                    Outcome::Answer(status, value) => {
                        unexpected(&load, format!("erase {status} {}", value["code"]));
                    }
                    Outcome::GaveUp => unexpected(&load, "erase given up".into()),
                }
            } else {
                match load
                    .client
                    .call(
                        first,
                        reqwest::Method::GET,
                        &format!("/v1/users/{id}"),
                        None,
                        None,
                    )
                    .await
                {
                    Outcome::Answer(200, _) => {}
                    Outcome::Answer(status, value) => {
                        unexpected(&load, format!("get {status} {}", value["code"]));
                    }
                    Outcome::GaveUp => unexpected(&load, "get given up".into()),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..120))).await;
    }
    users
}

fn unexpected(load: &Load, what: String) {
    *load
        .tally
        .lock()
        .expect("tally")
        .unexpected
        .entry(what)
        .or_default() += 1;
}

// ---------------------------------------------------------------------------------------------
// The fault schedule

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
enum Fault {
    /// `kill -9` of instance `instance`, started again `down_secs` later.
    KillInstance { instance: usize, down_secs: f64 },
    /// `pg_ctl restart -m immediate`.
    PostgresRestart,
    /// A simulator fault at one provider for `secs`.
    Provider {
        provider: ProviderId,
        kind: &'static str,
        secs: f64,
        spec: Value,
    },
    /// Subscriber `subscriber` answers 503 for `secs`.
    SubscriberFailing { subscriber: usize, secs: f64 },
}

#[derive(Debug, Clone, serde::Serialize)]
struct Scheduled {
    at_secs: f64,
    #[serde(flatten)]
    fault: Fault,
}

/// The faults of a run of `total` seconds, drawn from `seed`. Durations are those of the issue
/// (down 30 s, slow 30 s, 30% 5xx for 60 s, a subscriber failing for 60 s) scaled by
/// `total / 480` when the run is shorter (the quick run); kills come every 20–40 s regardless.
fn schedule(seed: u64, total: f64, instances: usize, restart_postgres: bool) -> Vec<Scheduled> {
    let mut rng = StdRng::seed_from_u64(seed);
    let scale = (total / 480.0).min(1.0);
    let mut faults = Vec::new();
    let mut at = 15.0_f64.min(total * 0.15);
    loop {
        at += rng.random_range(20.0..40.0);
        if at > total - 10.0 {
            break;
        }
        faults.push(Scheduled {
            at_secs: at,
            fault: Fault::KillInstance {
                instance: rng.random_range(0..instances),
                down_secs: rng.random_range(1.0..4.0),
            },
        });
    }
    if restart_postgres {
        faults.push(Scheduled {
            at_secs: total * rng.random_range(0.3..0.5),
            fault: Fault::PostgresRestart,
        });
    }
    for (k, &provider) in ProviderId::ALL.iter().enumerate() {
        let mut at = total * (0.05 + 0.1 * k as f64 + rng.random_range(0.0..0.05));
        let phases = [
            (
                "down (reset after read)",
                30.0,
                json!({"drop_connection": true}),
            ),
            ("slow (2 s)", 30.0, json!({"latency_ms": 2000})),
            (
                "5xx at 30%",
                60.0,
                json!({"status": 500, "error_rate": 0.3}),
            ),
        ];
        for (kind, secs, spec) in phases {
            let secs = secs * scale;
            let mut spec = spec;
            spec["provider"] = json!(provider.as_str());
            faults.push(Scheduled {
                at_secs: at,
                fault: Fault::Provider {
                    provider,
                    kind,
                    secs,
                    spec,
                },
            });
            at += secs + 10.0 * scale;
        }
    }
    faults.push(Scheduled {
        at_secs: total * rng.random_range(0.2..0.5),
        fault: Fault::SubscriberFailing {
            subscriber: 1,
            secs: 60.0 * scale,
        },
    });
    faults.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    faults
}

struct Chaos {
    instances: Mutex<Instances>,
    http: reqwest::Client,
    sim: String,
    pg_restart: Option<String>,
    subscribers: Vec<Arc<Subscriber>>,
    started: Instant,
    /// (from, to) seconds since the start while Postgres was down (plus a grace for the pools).
    database_down: Mutex<Vec<(f64, f64)>>,
    log: Mutex<Vec<String>>,
}

impl Chaos {
    fn say(&self, message: String) {
        let line = format!("[{:6.1}s] {message}", self.started.elapsed().as_secs_f64());
        note(&line);
        self.log.lock().expect("log").push(line);
    }

    async fn apply(self: Arc<Self>, fault: Fault) {
        match fault {
            Fault::KillInstance {
                instance,
                down_secs,
            } => {
                self.instances.lock().expect("instances").kill(instance);
                self.say(format!("kill -9 instance {instance}"));
                tokio::time::sleep(Duration::from_secs_f64(down_secs)).await;
                match self.instances.lock().expect("instances").start(instance) {
                    Ok(()) => self.say(format!("instance {instance} started again")),
                    Err(e) => self.say(format!("instance {instance} did not start: {e}")),
                }
            }
            Fault::PostgresRestart => {
                let Some(command) = self.pg_restart.clone() else {
                    return;
                };
                let from = self.started.elapsed().as_secs_f64();
                self.say("postgres: immediate restart".into());
                let outcome = tokio::task::spawn_blocking(move || {
                    Command::new("sh")
                        .arg("-c")
                        .arg(command)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                })
                .await;
                let to = self.started.elapsed().as_secs_f64();
                self.database_down
                    .lock()
                    .expect("window")
                    .push((from, to + 5.0));
                match outcome {
                    Ok(Ok(status)) if status.success() => {
                        self.say(format!("postgres: back after {:.1} s", to - from))
                    }
                    other => self.say(format!("postgres: restart failed: {other:?}")),
                }
            }
            Fault::Provider {
                provider,
                kind,
                secs,
                spec,
            } => {
                let added = self
                    .http
                    .post(format!("{}/_sim/faults", self.sim))
                    .json(&spec)
                    .send()
                    .await;
                let id = match added {
                    Ok(r) => r.json::<Value>().await.ok().and_then(|v| v["id"].as_u64()),
                    Err(_) => None,
                };
                let Some(id) = id else {
                    self.say(format!("{provider}: could not add fault {kind}"));
                    return;
                };
                self.say(format!("{provider}: {kind} for {secs:.0} s"));
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                let _ = self
                    .http
                    .delete(format!("{}/_sim/faults/{id}", self.sim))
                    .send()
                    .await;
                self.say(format!("{provider}: {kind} over"));
            }
            Fault::SubscriberFailing { subscriber, secs } => {
                let Some(target) = self.subscribers.get(subscriber) else {
                    return;
                };
                target.failing.store(true, Ordering::Relaxed);
                self.say(format!("subscriber {subscriber}: failing for {secs:.0} s"));
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                target.failing.store(false, Ordering::Relaxed);
                self.say(format!("subscriber {subscriber}: healthy again"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(env: Env) -> Result<bool, String> {
    std::fs::create_dir_all(&env.log_dir).map_err(|e| format!("{}: {e}", env.log_dir))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let bases: Vec<String> = env
        .ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let run_id = format!("{:x}", time::OffsetDateTime::now_utc().unix_timestamp());

    let subscribers = env
        .subscriber_ports
        .iter()
        .map(|&port| start_subscriber(port, &env.subscriber_secret))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("subscriber: {e}"))?;

    let mut instances = Instances::new(&env);
    for i in 0..env.ports.len() {
        instances.start(i).map_err(|e| format!("gateway: {e}"))?;
    }
    for base in &bases {
        if !wait_ready(&http, base, Duration::from_secs(60)).await {
            return Err(format!(
                "the gateway at {base} did not get ready (see its log)"
            ));
        }
    }
    // Webhooks: each provider's go to one instance (a killed one misses some; the
    // simulator's retries and the reconciliation pass must make up for it).
    let targets: serde_json::Map<String, Value> = ProviderId::ALL
        .iter()
        .enumerate()
        .map(|(k, p)| {
            (
                p.as_str().to_owned(),
                json!(format!("{}/v1/webhooks/{p}", bases[k % bases.len()])),
            )
        })
        .collect();
    http.put(format!("{}/_sim/webhook-targets", env.sim))
        .json(&targets)
        .send()
        .await
        .map_err(|e| format!("simulator: {e}"))?;

    let started = Instant::now();
    let chaos = Arc::new(Chaos {
        instances: Mutex::new(instances),
        http: http.clone(),
        sim: env.sim.clone(),
        pg_restart: env.pg_restart.clone(),
        subscribers: subscribers.clone(),
        started,
        database_down: Mutex::new(Vec::new()),
        log: Mutex::new(Vec::new()),
    });
    let plan = schedule(
        env.seed,
        env.fault_secs as f64,
        env.ports.len(),
        env.pg_restart.is_some(),
    );
    note(format!(
        "run {run_id}: {} s of faults ({} scheduled, seed {}), {} clients, {} instances",
        env.fault_secs,
        plan.len(),
        env.seed,
        env.clients,
        env.ports.len()
    ));
    let mut fault_tasks = Vec::new();
    for item in plan.clone() {
        let chaos = Arc::clone(&chaos);
        fault_tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(item.at_secs)).await;
            chaos.apply(item.fault).await;
        }));
    }

    let client = Arc::new(Client {
        http: http.clone(),
        bases: bases.clone(),
        auth: format!("Bearer {}", env.key),
        started,
        answers: Mutex::new(Answers::default()),
        patience: Duration::from_secs(90),
    });
    let load = Arc::new(Load {
        client: Arc::clone(&client),
        run: run_id.clone(),
        until: started + Duration::from_secs(env.fault_secs),
        tally: Mutex::new(ClientTally::default()),
        next_n: std::sync::atomic::AtomicU64::new(1),
    });
    let tasks: Vec<_> = (0..env.clients)
        .map(|w| {
            tokio::spawn(client_task(
                Arc::clone(&load),
                w,
                env.seed.wrapping_mul(1000) + w as u64,
            ))
        })
        .collect();
    let mut users: Vec<ClientUser> = Vec::new();
    for task in tasks {
        users.extend(task.await.map_err(|e| e.to_string())?);
    }
    for task in fault_tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    chaos.say("faults over; the load has stopped".into());

    // Every instance up, no fault left, then the queue drains.
    let _ = http.delete(format!("{}/_sim/faults", env.sim)).send().await;
    {
        let mut instances = chaos.instances.lock().expect("instances");
        for i in 0..env.ports.len() {
            if !instances.is_running(i) {
                instances.start(i).map_err(|e| format!("gateway: {e}"))?;
            }
        }
    }
    for base in &bases {
        if !wait_ready(&http, base, Duration::from_secs(60)).await {
            return Err(format!(
                "the gateway at {base} did not get ready after the faults"
            ));
        }
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&env.database_url)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let drain_deadline = Instant::now() + Duration::from_secs(env.drain_secs);
    drain(&pool, &chaos, drain_deadline).await?;
    chaos.say("reconciliation pass".into());
    let reconciliation = match client
        .call(
            0,
            reqwest::Method::POST,
            "/v1/reconciliation/runs",
            None,
            None,
        )
        .await
    {
        Outcome::Answer(status, value) => json!({"status": status, "summary": value}),
        Outcome::GaveUp => json!({"status": null}),
    };
    // The pass may have moved statuses: their notifications and any follow-up jobs drain too.
    drain(&pool, &chaos, drain_deadline + Duration::from_secs(30)).await?;
    wait_for_notifications(
        &pool,
        &subscribers,
        Instant::now() + Duration::from_secs(30),
    )
    .await?;

    let audit = audit(AuditInput {
        pool: &pool,
        http: &http,
        sim: &env.sim,
        run: &run_id,
        users: &users,
        load: &load,
        client: &client,
        chaos: &chaos,
        subscribers: &subscribers,
    })
    .await?;
    let passed = audit.rows.iter().all(|r| !r.fails());
    print_table(&audit, env.fault_secs, &run_id);
    let json = json!({
        "run": run_id,
        "seed": env.seed,
        "fault_secs": env.fault_secs,
        "clients": env.clients,
        "instances": env.ports.len(),
        "passed": passed,
        "rows": audit.rows,
        "details": audit.details,
        "reconciliation": reconciliation,
        "schedule": plan,
        "timeline": *chaos.log.lock().expect("log"),
    });
    std::fs::write(
        &env.out,
        serde_json::to_string_pretty(&json).expect("JSON values serialise"),
    )
    .map_err(|e| format!("{}: {e}", env.out))?;
    Ok(passed)
}

/// Waits until no job is queued or running (or the deadline passes).
async fn drain(pool: &sqlx::PgPool, chaos: &Chaos, deadline: Instant) -> Result<(), String> {
    loop {
        let (queued, running): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running') FROM jobs",
        )
        .fetch_one(pool)
        .await
        .map_err(|e| format!("database: {e}"))?;
        if queued == 0 && running == 0 {
            chaos.say("the job queue is empty".into());
            return Ok(());
        }
        if Instant::now() >= deadline {
            chaos.say(format!(
                "drain deadline: {queued} jobs queued, {running} running"
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The notifications the gateway's audit trail says every subscriber should get.
async fn expected_notifications(
    pool: &sqlx::PgPool,
) -> Result<Vec<(i64, notify::Notification)>, String> {
    let events: Vec<TrailEvent> = sqlx::query_as(
        "SELECT seq, id, user_id, type, at, data FROM user_events WHERE type = ANY($1) ORDER BY seq",
    )
    .bind(TRAIL_TYPES)
    .fetch_all(pool)
    .await
    .map_err(|e| format!("database: {e}"))?;
    Ok(events
        .iter()
        .flat_map(|e| {
            notify::notifications_for(e)
                .into_iter()
                .map(move |n| (e.seq, n))
        })
        .collect())
}

fn received_ids(subscriber: &Subscriber) -> BTreeSet<String> {
    subscriber
        .inbox
        .lock()
        .expect("inbox")
        .deliveries
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_for_notifications(
    pool: &sqlx::PgPool,
    subscribers: &[Arc<Subscriber>],
    deadline: Instant,
) -> Result<(), String> {
    loop {
        let expected = expected_notifications(pool).await?;
        let complete = subscribers.iter().all(|s| {
            let got = received_ids(s);
            expected
                .iter()
                .all(|(_, n)| got.contains(&n.id.to_string()))
        });
        if complete || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The audit

/// One line of the table.
#[derive(Debug, serde::Serialize)]
struct Row {
    name: &'static str,
    value: u64,
    /// `loss`: must be 0 (the run fails otherwise); `divergence`: should be 0 (reported);
    /// `count`: a figure.
    kind: &'static str,
}

impl Row {
    fn fails(&self) -> bool {
        self.kind == "loss" && self.value > 0
    }
}

struct Audit {
    rows: Vec<Row>,
    details: Value,
}

struct AuditInput<'a> {
    pool: &'a sqlx::PgPool,
    http: &'a reqwest::Client,
    sim: &'a str,
    run: &'a str,
    users: &'a [ClientUser],
    load: &'a Load,
    client: &'a Client,
    chaos: &'a Chaos,
    subscribers: &'a [Arc<Subscriber>],
}

#[derive(sqlx::FromRow)]
struct DbLink {
    user_id: String,
    provider: String,
    provider_user_id: Option<String>,
    status: String,
    needs_review: bool,
    erasure: Option<String>,
}

/// The statuses a link may show for a simulator account in `sim_status` (`active`: whether the
/// provider still reports the account active; a KillB deletion clears it).
fn matches_sim(link_status: &str, sim_status: &str, active: bool) -> bool {
    if !active {
        return link_status == "closed";
    }
    match sim_status {
        "pending" => matches!(link_status, "action_required" | "under_review"),
        "under_review" => link_status == "under_review",
        "incomplete" => link_status == "action_required",
        other => link_status == other,
    }
}

/// The run's client number in a simulator account (its external id or e-mail carry
/// `chaos-<run>-<n>`), wherever the provider keeps it.
fn client_number(account: &Value, run: &str) -> Option<u64> {
    let text = account.to_string();
    let marker = format!("chaos-{run}-");
    let start = text.find(&marker)? + marker.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn audit(input: AuditInput<'_>) -> Result<Audit, String> {
    let db = |e: sqlx::Error| format!("database: {e}");
    let users_in_db: Vec<(String, Option<String>, bool)> =
        sqlx::query_as("SELECT id::text, external_id, erased_at IS NOT NULL FROM users")
            .fetch_all(input.pool)
            .await
            .map_err(db)?;
    let db_users: HashMap<&str, bool> = users_in_db
        .iter()
        .map(|(id, _, erased)| (id.as_str(), *erased))
        .collect();
    let links: Vec<DbLink> = sqlx::query_as(
        "SELECT user_id::text AS user_id, provider, provider_user_id, status, needs_review, erasure FROM provider_links",
    )
    .fetch_all(input.pool)
    .await
    .map_err(db)?;
    let jobs: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state")
            .fetch_all(input.pool)
            .await
            .map_err(db)?;
    let jobs: HashMap<String, i64> = jobs.into_iter().collect();

    // The simulator's accounts, by provider, each with the client number it carries.
    let mut accounts: BTreeMap<&'static str, Vec<(Option<u64>, Value)>> = BTreeMap::new();
    for provider in ProviderId::ALL {
        let list: Vec<Value> = input
            .http
            .get(format!("{}/_sim/{provider}/users", input.sim))
            .send()
            .await
            .map_err(|e| format!("simulator: {e}"))?
            .json()
            .await
            .map_err(|e| format!("simulator: {e}"))?;
        accounts.insert(
            provider.as_str(),
            list.into_iter()
                .map(|a| (client_number(&a, input.run), a))
                .collect(),
        );
    }

    let acknowledged: Vec<&ClientUser> = input.users.iter().filter(|u| u.id().is_some()).collect();
    let lost: Vec<&str> = acknowledged
        .iter()
        .filter_map(|u| u.id())
        .filter(|id| !db_users.contains_key(id))
        .collect();
    let duplicate_keys: Vec<&str> = acknowledged
        .iter()
        .filter(|u| u.ids.len() > 1)
        .map(|u| u.key.as_str())
        .collect();
    let known_ids: BTreeSet<&str> = acknowledged
        .iter()
        .flat_map(|u| u.ids.iter().map(String::as_str))
        .collect();
    let unacknowledged_users = db_users
        .keys()
        .filter(|id| !known_ids.contains(*id))
        .count();
    let idempotency_misses = acknowledged.iter().filter(|u| u.idempotency_miss).count();

    let links_by_user: HashMap<(&str, &str), &DbLink> = links
        .iter()
        .map(|l| ((l.user_id.as_str(), l.provider.as_str()), l))
        .collect();
    let mut linked_ids: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for link in &links {
        if let Some(pid) = &link.provider_user_id {
            linked_ids
                .entry(link.provider.as_str())
                .or_default()
                .insert(pid.as_str());
        }
    }

    let mut not_exactly_one = Vec::new();
    let mut never_submitted = Vec::new();
    let mut erased_before_submission = 0usize;
    let mut status_differs = Vec::new();
    let mut patch_differs = Vec::new();
    let mut erasure_unfinished = Vec::new();
    let mut needs_review = Vec::new();
    let mut orphans = Vec::new();
    for (provider, list) in &accounts {
        for (number, account) in list {
            let id = account["id"].as_str().unwrap_or_default();
            let linked = linked_ids.get(provider).is_some_and(|s| s.contains(id));
            if number.is_some() && !linked {
                orphans.push(format!("{provider} {id} (client #{})", number.unwrap_or(0)));
            }
        }
    }
    for user in &acknowledged {
        let Some(id) = user.id() else { continue };
        for provider in &user.providers {
            let mine: Vec<&Value> = accounts
                .get(provider.as_str())
                .into_iter()
                .flatten()
                .filter(|(n, _)| *n == Some(user.n))
                .map(|(_, a)| a)
                .collect();
            let link = links_by_user.get(&(id, provider.as_str()));
            if let Some(link) = link {
                if link.needs_review {
                    needs_review.push(format!("{provider} {id} {}", link.status));
                }
                if link.erasure.as_deref() == Some("pending") {
                    erasure_unfinished.push(format!("{provider} {id}"));
                }
            }
            if mine.len() != 1 {
                // Erased before its provider heard of it: nothing to submit, nothing to delete.
                if mine.is_empty()
                    && link.is_some_and(|l| l.erasure.as_deref() == Some("not_submitted"))
                {
                    erased_before_submission += 1;
                } else if mine.is_empty() && link.is_some_and(|l| l.provider_user_id.is_none()) {
                    never_submitted.push(format!(
                        "{provider} {id} {}",
                        link.map(|l| l.status.as_str()).unwrap_or("?")
                    ));
                } else {
                    not_exactly_one.push(format!("{provider} {id}: {} accounts", mine.len()));
                }
                continue;
            }
            let account = mine[0];
            let (Some(link), false) = (link, user.erased) else {
                continue;
            };
            let sim_status = account["sim_status"].as_str().unwrap_or_default();
            let active = account["active"].as_bool().unwrap_or(true);
            if !matches_sim(&link.status, sim_status, active) {
                status_differs.push(format!(
                    "{provider} {id}: gateway {} (review {}), simulator {sim_status}{}",
                    link.status,
                    link.needs_review,
                    if active { "" } else { " inactive" }
                ));
            }
            if let (Some((city, phone)), false) = (&user.patched, user.patch_unknown) {
                let profile = account["profile"].to_string();
                let digits = &phone[phone.len() - 8..];
                if !profile.contains(city.as_str()) || !profile.contains(digits) {
                    patch_differs.push(format!("{provider} {id}: wanted {city} / {phone}"));
                }
            }
        }
    }

    // Notifications, per subscriber.
    let expected = expected_notifications(input.pool).await?;
    let order: HashMap<String, (i64, String)> = expected
        .iter()
        .map(|(seq, n)| {
            (
                n.id.to_string(),
                (
                    *seq,
                    n.data["user_id"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();
    let expected_bodies: HashMap<String, Value> = expected
        .iter()
        .map(|(_, n)| {
            (
                n.id.to_string(),
                json!({"type": n.event_type, "data": n.data}),
            )
        })
        .collect();
    let mut missing = 0u64;
    let mut redelivered = 0u64;
    let mut conflicting = 0u64;
    let mut out_of_order = 0u64;
    let mut unknown = 0u64;
    let mut bad_signatures = 0u64;
    let mut refused = 0u64;
    let mut received_total = 0u64;
    for subscriber in input.subscribers {
        let inbox = subscriber.inbox.lock().expect("inbox");
        bad_signatures += inbox.bad_signatures;
        refused += inbox.refused_while_failing;
        received_total += inbox.deliveries.len() as u64;
        let mut first: HashMap<String, Value> = HashMap::new();
        let mut last_seq: HashMap<String, i64> = HashMap::new();
        let mut disordered_users: BTreeSet<String> = BTreeSet::new();
        for delivery in &inbox.deliveries {
            let id = delivery["id"].as_str().unwrap_or_default().to_owned();
            let body = json!({"type": delivery["type"], "data": delivery["data"]});
            if let Some(seen) = first.get(&id) {
                redelivered += 1;
                if *seen != body {
                    conflicting += 1;
                }
                continue;
            }
            first.insert(id.clone(), body.clone());
            match (order.get(&id), expected_bodies.get(&id)) {
                (Some((seq, user)), Some(wanted)) => {
                    if *wanted != body {
                        conflicting += 1;
                    }
                    let last = last_seq.entry(user.clone()).or_insert(i64::MIN);
                    if *seq < *last {
                        disordered_users.insert(user.clone());
                    }
                    *last = (*last).max(*seq);
                }
                _ => unknown += 1,
            }
        }
        missing += expected
            .iter()
            .filter(|(_, n)| !first.contains_key(&n.id.to_string()))
            .count() as u64;
        out_of_order += disordered_users.len() as u64;
    }

    let answers = input.client.answers.lock().expect("answers");
    let windows = input.chaos.database_down.lock().expect("window").clone();
    let in_window = |at: f64| windows.iter().any(|(from, to)| at >= *from && at <= *to);
    let non503_db_down = answers
        .server_errors
        .iter()
        .filter(|(at, s)| *s != 503 && in_window(*at))
        .count();
    let non503_other = answers
        .server_errors
        .iter()
        .filter(|(at, s)| *s != 503 && !in_window(*at))
        .count();
    let tally = input.load.tally.lock().expect("tally");
    let count = |v: usize| v as u64;
    let rows = vec![
        Row {
            name: "creates sent",
            value: tally.creates_sent,
            kind: "count",
        },
        Row {
            name: "creates acknowledged",
            value: count(acknowledged.len()),
            kind: "count",
        },
        Row {
            name: "creates given up by the client (no answer in 90 s)",
            value: tally.creates_given_up,
            kind: "count",
        },
        Row {
            name: "users lost (acknowledged, not in the database)",
            value: count(lost.len()),
            kind: "loss",
        },
        Row {
            name: "duplicate users (one idempotency key, two users)",
            value: count(duplicate_keys.len()),
            kind: "loss",
        },
        Row {
            name: "retries of a create key answered 409 user_already_exists",
            value: count(idempotency_misses),
            kind: "loss",
        },
        Row {
            name: "users in the database no client was told of",
            value: count(unacknowledged_users),
            kind: "count",
        },
        Row {
            name: "users erased",
            value: count(acknowledged.iter().filter(|u| u.erased).count()),
            kind: "count",
        },
        Row {
            name: "links (user, provider)",
            value: count(acknowledged.iter().map(|u| u.providers.len()).sum()),
            kind: "count",
        },
        Row {
            name: "provider accounts per user per provider ≠ 1",
            value: count(not_exactly_one.len()),
            kind: "loss",
        },
        Row {
            name: "accounts at a provider with no gateway user",
            value: count(orphans.len()),
            kind: "loss",
        },
        Row {
            name: "links never submitted (no provider account)",
            value: count(never_submitted.len()),
            // The queue has drained: a live user's link with no account will never get one.
            kind: "loss",
        },
        Row {
            name: "links erased before their submission (nothing at the provider)",
            value: count(erased_before_submission),
            kind: "count",
        },
        Row {
            name: "links whose status differs from the simulator's",
            value: count(status_differs.len()),
            kind: "divergence",
        },
        Row {
            name: "links flagged needs_review",
            value: count(needs_review.len()),
            kind: "divergence",
        },
        Row {
            name: "patched fields that differ at the provider",
            value: count(patch_differs.len()),
            kind: "divergence",
        },
        Row {
            name: "erasures still pending at a provider",
            value: count(erasure_unfinished.len()),
            kind: "divergence",
        },
        Row {
            name: "erase answers that were not receipts",
            value: count(tally.erase_answers_not_receipts.len()),
            kind: "loss",
        },
        Row {
            name: "notifications expected (per subscriber)",
            value: count(expected.len()),
            kind: "count",
        },
        Row {
            name: "notifications received (all subscribers, with redeliveries)",
            value: received_total,
            kind: "count",
        },
        Row {
            name: "notifications missing",
            value: missing,
            kind: "loss",
        },
        Row {
            name: "notifications delivered again (deduplicated on id)",
            value: redelivered,
            kind: "count",
        },
        Row {
            name: "notifications with one id and two bodies",
            value: conflicting,
            kind: "loss",
        },
        Row {
            name: "notifications no audit event explains",
            value: unknown,
            kind: "loss",
        },
        Row {
            name: "users whose notifications arrived out of order",
            value: out_of_order,
            kind: "loss",
        },
        Row {
            name: "notifications with a bad signature",
            value: bad_signatures,
            kind: "loss",
        },
        Row {
            name: "notifications refused while a subscriber failed",
            value: refused,
            kind: "count",
        },
        Row {
            name: "jobs stuck running",
            value: jobs.get("running").copied().unwrap_or(0) as u64,
            kind: "loss",
        },
        Row {
            name: "jobs still queued",
            value: jobs.get("queued").copied().unwrap_or(0) as u64,
            kind: "divergence",
        },
        Row {
            name: "jobs failed (attempts exhausted)",
            value: jobs.get("failed").copied().unwrap_or(0) as u64,
            kind: "divergence",
        },
        Row {
            name: "5xx other than 503 while the database was down",
            value: count(non503_db_down),
            kind: "loss",
        },
        Row {
            name: "5xx other than 503 at other times",
            value: count(non503_other),
            kind: "divergence",
        },
        Row {
            name: "503 answers (retried)",
            value: answers.by_status.get(&503).copied().unwrap_or(0),
            kind: "count",
        },
        Row {
            name: "transport errors (retried)",
            value: answers.transport_errors,
            kind: "count",
        },
    ];
    let sample = |v: &[String]| v.iter().take(20).cloned().collect::<Vec<_>>();
    let details = json!({
        "lost": lost,
        "duplicate_keys": duplicate_keys,
        "not_exactly_one_account": sample(&not_exactly_one),
        "orphan_accounts": sample(&orphans),
        "never_submitted": sample(&never_submitted),
        "status_differs": sample(&status_differs),
        "needs_review": sample(&needs_review),
        "patch_differs": sample(&patch_differs),
        "erasure_pending": sample(&erasure_unfinished),
        "erase_answers_not_receipts": sample(&tally.erase_answers_not_receipts),
        "unexpected_answers": tally.unexpected,
        "answers_by_status": answers.by_status,
        "server_errors": answers.server_errors.iter().filter(|(_, s)| *s != 503).take(20).collect::<Vec<_>>(),
        "database_down": windows,
    });
    Ok(Audit { rows, details })
}

fn print_table(audit: &Audit, fault_secs: u64, run: &str) {
    println!("chaos run {run}: {fault_secs} s of faults, then drain, reconciliation and audit");
    println!("{:<66} {:>8}", "", "");
    for row in &audit.rows {
        let mark = match (row.kind, row.value) {
            ("loss", v) if v > 0 => "  FAIL",
            ("divergence", v) if v > 0 => "  divergent",
            _ => "",
        };
        println!("{:<66} {:>8}{mark}", row.name, row.value);
    }
    for (name, value) in audit.details.as_object().into_iter().flatten() {
        let empty = value.as_array().is_some_and(Vec::is_empty)
            || value.as_object().is_some_and(serde_json::Map::is_empty);
        if !empty && !matches!(name.as_str(), "answers_by_status" | "database_down") {
            println!("  {name}: {value}");
        }
    }
}
