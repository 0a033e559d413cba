//! `bench`: the load generator behind `scripts/bench.sh` (README "Performance").
//!
//! ```text
//! bench config --sim URL      print a gateway config file that uses a standalone provider-sim
//! bench run                   drive the scenarios against a running gateway (env below)
//! bench user-body RUN PROVIDER N   print the `n`th create body of a run (scripts/callgrind.sh)
//! ```
//! `run` reads its settings from the environment (the script sets them): `BENCH_BASE_URL`,
//! `BENCH_SIM_URL`, `BENCH_API_KEY`, `BENCH_GATEWAY_PID` (for RSS), `BENCH_SECS` (per
//! scenario), `BENCH_SOAK_SECS`, `BENCH_SOAK_RATE`, `BENCH_SEED_USERS`, `BENCH_PGBENCH_SELECT_TPS`,
//! `BENCH_PGBENCH_PERSIST_TPS`, `BENCH_OUT` (JSON path), `BENCH_QUICK`, `BENCH_SCENARIOS`,
//! `BENCH_LATENCY_PROVIDER` and `BENCH_LATENCY_PATH` (scenario 5's slow create call),
//! `BENCH_UPLOAD_ROUNDS` (scenario 8b's rounds of 32 uploads), `BENCH_UPLOAD_PROVIDERS` (8 and
//! 8b upload only to users at these) (`BENCH_SCENARIOS` e.g. `1,3`: only those, for profiling),
//! `BENCH_FLOOR_URL` and `BENCH_FLOOR_PID` (the same-stack floor, `src/bin/floor.rs`: scenarios
//! 1, 2 and 3 are run against it too, right after the gateway's, as `1f`, `2f`, `3f-…`) and
//! `BENCH_CLK_TCK` (the kernel's clock ticks per second, for CPU per request from `/proc`).
//!
//! Load is real HTTP from this separate process, every create with a unique `external_id`.
//! Closed-loop scenarios keep N requests in flight; open-loop ones send at a fixed rate and
//! time each request from its scheduled start (no coordinated omission). Percentiles are
//! exact (all samples kept and sorted).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::settings::DocumentSettings;

/// mimalloc, as the gateway uses: the load generator shares the machine's cores with what it
/// measures, so it should cost as little of them as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("config") => {
            let sim = match (args.get(1).map(String::as_str), args.get(2)) {
                (Some("--sim"), Some(url)) => url.clone(),
                _ => usage(),
            };
            print!("{}", gateway_config(&sim));
        }
        Some("user-body") => match (args.get(1), args.get(2), args.get(3)) {
            (Some(run), Some(provider), Some(n)) => {
                let n = n.parse().unwrap_or_else(|_| usage());
                println!("{}", user_body(run, provider, n));
            }
            _ => usage(),
        },
        Some("run") => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            if let Err(error) = runtime.block_on(run(Env::from_env())) {
                eprintln!("bench: {error}");
                std::process::exit(1);
            }
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: bench config --sim URL | bench run | bench user-body RUN PROVIDER N   (see scripts/bench.sh)"
    );
    std::process::exit(2)
}

/// A gateway configuration layer pointing every provider at a standalone `provider-sim`
/// with the simulators' development credentials (the in-process simulators stay off, so the
/// gateway's RSS and CPU are its own).
fn gateway_config(sim: &str) -> String {
    let simulators = onboarding_gateway::sim::SimConfig::development();
    let mut toml = String::from(
        "# Written by `bench config` for scripts/bench.sh.\n[simulator]\nenabled = false\n",
    );
    for id in ProviderId::ALL {
        toml.push_str(&format!("\n[providers.{id}]\n"));
        for (key, value) in simulators.gateway_settings(*id, sim) {
            // A JSON string, number or boolean is also a TOML basic string, number or boolean.
            toml.push_str(&format!("{key} = {value}\n"));
        }
    }
    // Written out, so that the memory bound scenario 8b checks is the one the gateway runs with.
    let documents = DocumentSettings::default();
    toml.push_str(&format!(
        "\n[documents]\nmax_bytes = {}\nmax_concurrent_uploads = {}\nupload_slot_wait_secs = {}\nmax_concurrent_sends = {}\n",
        documents.max_bytes,
        documents.max_concurrent_uploads,
        documents.upload_slot_wait_secs,
        documents.max_concurrent_sends
    ));
    toml
}

/// The provider of the `n`th create (round robin over the provider list).
fn provider_of(n: u64) -> &'static str {
    ProviderId::ALL[(n % ProviderId::ALL.len() as u64) as usize].as_str()
}

struct Env {
    base: String,
    sim: String,
    key: String,
    pid: Option<u32>,
    /// The floor's base URL and process, when it runs.
    floor: Option<String>,
    floor_pid: Option<u32>,
    /// `/proc/PID/stat` counts CPU time in these ticks per second.
    clk_tck: f64,
    secs: u64,
    soak_secs: u64,
    /// Requests per second during the soak: a steady load well inside capacity (an overloaded
    /// open loop measures queued requests, not the gateway's memory).
    soak_rate: f64,
    seed_users: u64,
    pgbench_select_tps: Option<f64>,
    pgbench_persist_tps: Option<f64>,
    out: String,
    quick: bool,
    /// `BENCH_SCENARIOS=1,3`: run only these (for profiling one at a time).
    scenarios: Option<Vec<String>>,
    /// Scenario 5's slow provider and the path of its create call.
    latency_provider: String,
    latency_path: String,
    /// Scenario 8b: how many times 32 uploads of `documents.max_bytes` go at once.
    upload_rounds: u64,
    /// `BENCH_UPLOAD_PROVIDERS=carbn`: upload only to users at these providers (profiling: at
    /// Carbn an upload is stored and sent nowhere).
    upload_providers: Option<Vec<String>>,
}

impl Env {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let num = |name: &str, default: u64| {
            var(name)
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|_| panic!("{name} must be a number"))
                })
                .unwrap_or(default)
        };
        let quick = var("BENCH_QUICK").is_some_and(|v| v != "0");
        Self {
            base: var("BENCH_BASE_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            sim: var("BENCH_SIM_URL").unwrap_or_else(|| "http://127.0.0.1:9000".into()),
            key: var("BENCH_API_KEY").unwrap_or_else(|| "dev_sk_onboarding_gateway_local".into()),
            pid: var("BENCH_GATEWAY_PID").and_then(|v| v.parse().ok()),
            floor: var("BENCH_FLOOR_URL"),
            floor_pid: var("BENCH_FLOOR_PID").and_then(|v| v.parse().ok()),
            clk_tck: num("BENCH_CLK_TCK", 100) as f64,
            secs: num("BENCH_SECS", if quick { 3 } else { 20 }),
            soak_secs: num("BENCH_SOAK_SECS", if quick { 15 } else { 300 }),
            soak_rate: num("BENCH_SOAK_RATE", 200) as f64,
            seed_users: num("BENCH_SEED_USERS", if quick { 300 } else { 3000 }),
            pgbench_select_tps: var("BENCH_PGBENCH_SELECT_TPS").and_then(|v| v.parse().ok()),
            pgbench_persist_tps: var("BENCH_PGBENCH_PERSIST_TPS").and_then(|v| v.parse().ok()),
            out: var("BENCH_OUT").unwrap_or_else(|| "target/bench/results.json".into()),
            quick,
            latency_provider: var("BENCH_LATENCY_PROVIDER")
                .unwrap_or_else(|| ProviderId::ALL[0].as_str().to_owned()),
            latency_path: var("BENCH_LATENCY_PATH").unwrap_or_default(),
            upload_rounds: num("BENCH_UPLOAD_ROUNDS", if quick { 2 } else { 3 }).max(1),
            upload_providers: var("BENCH_UPLOAD_PROVIDERS")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
            scenarios: var("BENCH_SCENARIOS")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }
}

/// One request's outcome.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// From the scheduled start in open loops (a late request counts its wait), else from sending.
    latency: Duration,
    /// From the moment the request was sent to the end of the response body.
    round_trip: Duration,
    status: u16,
    /// `Server-Timing` `gateway` and `provider` durations (ms), when present.
    gateway_ms: Option<f64>,
    provider_ms: Option<f64>,
    /// A `503` whose problem document says `overloaded` (uploads: the slot wait ran out).
    overloaded: bool,
}

#[derive(Debug, Default)]
struct Recorder {
    samples: Vec<Sample>,
    errors: BTreeMap<String, u64>,
    /// Requests sent, warm-up included (the CPU figure's denominator).
    issued: u64,
    /// CPU seconds (user + system) the measured server used meanwhile, warm-up included.
    server_cpu_secs: Option<f64>,
}

impl Recorder {
    fn add(&mut self, result: Result<Sample, String>) {
        match result {
            Ok(sample) => self.samples.push(sample),
            Err(error) => *self.errors.entry(error).or_default() += 1,
        }
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut values: Vec<f64>) -> Option<Latency> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1]
    };
    Some(Latency {
        p50: at(50.0),
        p90: at(90.0),
        p99: at(99.0),
        max: *values.last().expect("non-empty"),
    })
}

#[derive(Debug, Clone, serde::Serialize)]
struct ScenarioResult {
    id: String,
    name: String,
    concurrency: Option<usize>,
    rate_per_sec: Option<f64>,
    secs: f64,
    requests: u64,
    /// Answers with an unexpected status, and transport errors, by kind.
    errors: BTreeMap<String, u64>,
    throughput_rps: f64,
    latency_ms: Option<Latency>,
    /// Scenario 6: client-observed latency minus the provider time the gateway reports.
    gateway_added_ms: Option<Latency>,
    /// Scenario 6: the gateway's own `Server-Timing` total minus its provider time.
    server_side_added_ms: Option<Latency>,
    /// Scenario 6: the provider time per request.
    provider_ms: Option<Latency>,
    /// Scenario 8b: `503 overloaded` answers (the slot wait ran out), counted apart from errors.
    overloaded: Option<u64>,
    /// Scenarios 8, 8b: the uploads' submissions by `provider: status`, as the 201s showed them.
    submissions: Option<BTreeMap<String, u64>>,
    /// The server measured: `gateway`, or `floor` for `1f`, `2f`, `3f-…`.
    server: &'static str,
    /// That server's CPU (user + system, from `/proc/PID/stat`) per request sent, in µs: a
    /// regression shows here even when the machine is too noisy for the throughput to.
    cpu_us_per_request: Option<f64>,
}

fn summarise(
    id: &str,
    name: &str,
    concurrency: Option<usize>,
    rate: Option<f64>,
    elapsed: Duration,
    recorder: Recorder,
    expected: &[u16],
) -> ScenarioResult {
    let transport: u64 = recorder.errors.values().sum();
    let (issued, server_cpu_secs) = (recorder.issued, recorder.server_cpu_secs);
    let requests = recorder.samples.len() as u64 + transport;
    let mut errors = recorder.errors;
    let mut ok = Vec::new();
    // 8b sends more uploads at once than there are slots: a refusal after the slot wait is what
    // the gateway promises, so it is counted on its own, not as an error.
    let count_overloaded = id == "8b";
    let mut overloaded = 0;
    for sample in &recorder.samples {
        if expected.contains(&sample.status) {
            ok.push(*sample);
        } else if count_overloaded && sample.overloaded {
            overloaded += 1;
        } else {
            *errors.entry(format!("http {}", sample.status)).or_default() += 1;
        }
    }
    let secs = elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let added: Vec<f64> = ok
        .iter()
        // From sending, not from the schedule: the load generator's own lateness (tokio's timer
        // ticks in whole milliseconds) is not the gateway's.
        .filter_map(|s| s.provider_ms.map(|p| ms(s.round_trip) - p))
        .collect();
    let server_side: Vec<f64> = ok
        .iter()
        .filter_map(|s| Some(s.gateway_ms? - s.provider_ms?))
        .collect();
    let provider: Vec<f64> = ok.iter().filter_map(|s| s.provider_ms).collect();
    let with_provider_time = id.starts_with('6');
    let cpu_us_per_request = server_cpu_secs
        .filter(|_| issued > 0)
        .map(|cpu| cpu * 1e6 / issued as f64);
    ScenarioResult {
        server: if id.ends_with('f') || id.starts_with("3f-") {
            "floor"
        } else {
            "gateway"
        },
        cpu_us_per_request,
        id: id.into(),
        name: name.into(),
        concurrency,
        rate_per_sec: rate,
        secs,
        requests,
        throughput_rps: ok.len() as f64 / secs,
        latency_ms: percentiles(ok.iter().map(|s| ms(s.latency)).collect()),
        gateway_added_ms: with_provider_time.then(|| percentiles(added)).flatten(),
        server_side_added_ms: with_provider_time
            .then(|| percentiles(server_side))
            .flatten(),
        provider_ms: with_provider_time.then(|| percentiles(provider)).flatten(),
        overloaded: count_overloaded.then_some(overloaded),
        submissions: None,
        errors,
    }
}

/// Keeps `concurrency` requests in flight for `secs` (after `warmup`, which is not recorded).
async fn closed_loop<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    secs: u64,
    request: F,
) -> (Duration, Recorder)
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Sample, String>> + Send,
{
    let seq = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + warmup;
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (seq, request) = (seq.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut recorder = Recorder::default();
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let result = request(seq.fetch_add(1, Ordering::Relaxed)).await;
                if began >= start {
                    recorder.add(result);
                }
            }
            recorder
        }));
    }
    let mut all = Recorder::default();
    for task in tasks {
        let recorder = task.await.expect("load task");
        all.samples.extend(recorder.samples);
        for (k, v) in recorder.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    // Read once every task has finished: each request sent has taken its number by then.
    all.issued = seq.load(Ordering::Relaxed);
    (Instant::now().max(end) - start, all)
}

/// Starts `rate` requests per second for `secs`, each timed from its scheduled start.
async fn open_loop<F, Fut>(rate: f64, secs: u64, request: F) -> (Duration, Recorder)
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Sample, String>> + Send + 'static,
{
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let start = Instant::now();
    let total = (rate * secs as f64).round() as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let (recorder, request) = (recorder.clone(), request.clone());
        tasks.spawn(async move {
            let result = request(n).await.map(|mut sample| {
                sample.latency = scheduled.elapsed();
                sample
            });
            recorder.lock().expect("recorder").add(result);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = Duration::from_secs(secs);
    let mut recorder = std::mem::take(&mut *recorder.lock().expect("recorder"));
    recorder.issued = total;
    (elapsed, recorder)
}

fn server_timing(response: &reqwest::Response) -> (Option<f64>, Option<f64>) {
    let Some(value) = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
    else {
        return (None, None);
    };
    let mut gateway = None;
    let mut provider = None;
    for metric in value.split(',') {
        let mut parts = metric.trim().split(';');
        let name = parts.next().unwrap_or_default();
        let dur = parts
            .find_map(|p| p.trim().strip_prefix("dur="))
            .and_then(|d| d.parse::<f64>().ok());
        match name {
            "gateway" => gateway = dur,
            "provider" => provider = dur,
            _ => {}
        }
    }
    (gateway, provider)
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: Arc<str>,
    auth: Arc<str>,
    run: Arc<str>,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Sample, String> {
        self.send_for_body(request).await.map(|(sample, _)| sample)
    }

    /// [`Api::send`], keeping the answer's body.
    async fn send_for_body(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(Sample, bytes::Bytes), String> {
        let began = Instant::now();
        let response = request
            .header("authorization", &*self.auth)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let (gateway_ms, provider_ms) = server_timing(&response);
        let body = response.bytes().await.map_err(|e| transport_error(&e))?;
        let round_trip = began.elapsed();
        let sample = Sample {
            latency: round_trip,
            round_trip,
            status,
            gateway_ms,
            provider_ms,
            overloaded: false,
        };
        Ok((sample, body))
    }

    /// `POST /v1/users/{id}/documents` with a prebuilt multipart body (shared, not copied);
    /// a 201's submissions are counted in `tally` by `provider: status`.
    async fn upload(
        &self,
        user_id: &str,
        upload: &UploadBody,
        tally: &Mutex<BTreeMap<String, u64>>,
    ) -> Result<Sample, String> {
        let (mut sample, body) = self
            .send_for_body(
                self.client
                    .post(self.url(&format!("/v1/users/{user_id}/documents")))
                    .header("content-type", &*upload.content_type)
                    .body(upload.body.clone()),
            )
            .await?;
        match sample.status {
            201 => {
                let document: Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut tally = tally.lock().expect("tally");
                for submission in document["submissions"].as_array().into_iter().flatten() {
                    let key = format!(
                        "{}: {}",
                        submission["provider"].as_str().unwrap_or("?"),
                        submission["status"].as_str().unwrap_or("?")
                    );
                    *tally.entry(key).or_default() += 1;
                }
            }
            503 => {
                let problem: Value = serde_json::from_slice(&body).unwrap_or_default();
                sample.overloaded = problem["code"] == "overloaded";
            }
            _ => {}
        }
        Ok(sample)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn create(&self, provider: &str, n: u64) -> Result<Sample, String> {
        let body = user_body(&self.run, provider, n);
        self.send(
            self.client
                .post(self.url("/v1/users"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Sample, String> {
        self.send(self.client.get(self.url(&format!("/v1/users/{id}"))))
            .await
    }

    async fn list(&self, n: u64) -> Result<Sample, String> {
        let provider = provider_of(n);
        self.send(
            self.client
                .get(self.url(&format!("/v1/users?provider={provider}&limit=50"))),
        )
        .await
    }

    async fn patch(&self, id: &str, n: u64) -> Result<Sample, String> {
        let body = format!(
            r#"{{"phone": "+49151{:08}", "address": {{"city": "Potsdam {n}"}}}}"#,
            n % 100_000_000
        );
        self.send(
            self.client
                .patch(self.url(&format!("/v1/users/{id}")))
                .header("content-type", "application/merge-patch+json")
                .body(body),
        )
        .await
    }
}

fn transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

/// A complete canonical user that meets every provider's requirements, sent to `provider`,
/// with a unique `external_id` (run id + sequence number).
fn user_body(run: &str, provider: &str, n: u64) -> String {
    // Unique email too: a provider that finds an account with the same email, name and birth
    // date may hand it back (Carbn lookup), which is not what a create benchmark measures.
    let external_id = format!("bench-{run}-{provider}-{n}");
    json!({
        "email": format!("{external_id}+approve@example.com"),
        "external_id": external_id,
        "type": "individual",
        "phone": format!("+49151{:08}", n % 100_000_000),
        "name": {"first": "Bench", "last": format!("User{n}")},
        "date_of_birth": "1990-01-15",
        "nationalities": ["DE"],
        "address": {"line1": "Invalidenstr. 1", "city": "Berlin", "region": "BE",
                    "postal_code": "10115", "country": "DE"},
        "identity_document": {"type": "passport", "number": format!("C{:08}", n % 100_000_000),
                              "issuing_country": "DE"},
        "employment": {"status": "employed", "industry": "computers_and_it",
                       "occupation": "Software Engineer", "employer_name": "Acme GmbH"},
        "terms": {"version": 3, "accepted_at": "2026-11-01T09:30:00Z"},
        "providers": [provider],
    })
    .to_string()
}

/// A `multipart/form-data` upload built once and sent as is by every request of a scenario:
/// `body` is shared (`Bytes` clones count references), so the load generator copies no file.
struct UploadBody {
    content_type: String,
    body: bytes::Bytes,
}

/// The boundary of [`upload_body`]; the filler of [`pdf_file`] never contains it.
const UPLOAD_BOUNDARY: &str = "bench-upload-boundary-7f3a9c";

/// A `proof_of_address` upload with a `verification` attestation (Kraken takes only attested
/// documents; KillB and Carbn ignore it) and `file` as the PDF.
fn upload_body(file: &[u8]) -> UploadBody {
    let verification = json!({"verifier": "bench_kyc_vendor", "verified_at": "2026-11-01T09:30:00Z",
                              "reference": "bench-check-1"});
    let part = |name: &str| {
        format!("--{UPLOAD_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n")
    };
    let mut body = Vec::with_capacity(file.len() + 1024);
    body.extend_from_slice(format!("{}\r\nproof_of_address\r\n", part("type")).as_bytes());
    body.extend_from_slice(format!("{}\r\n{verification}\r\n", part("verification")).as_bytes());
    body.extend_from_slice(
        format!(
            "--{UPLOAD_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"statement.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{UPLOAD_BOUNDARY}--\r\n").as_bytes());
    UploadBody {
        content_type: format!("multipart/form-data; boundary={UPLOAD_BOUNDARY}"),
        body: bytes::Bytes::from(body),
    }
}

/// A PDF of exactly `size` bytes: the header the gateway recognises a PDF by, comment lines of
/// filler (different on every line, so nothing along the way sees one repeated block), the
/// end-of-file marker.
fn pdf_file(size: usize) -> Vec<u8> {
    const HEAD: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n";
    const TAIL: &[u8] = b"\n%%EOF\n";
    let mut file = Vec::with_capacity(size);
    file.extend_from_slice(HEAD);
    let mut line = 0u64;
    while file.len() < size - TAIL.len() {
        let text = format!(
            "% bench filler line {line:010} {:016x}\n",
            line.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        let room = size - TAIL.len() - file.len();
        file.extend_from_slice(&text.as_bytes()[..text.len().min(room)]);
        line += 1;
    }
    file.extend_from_slice(TAIL);
    debug_assert_eq!(file.len(), size);
    file
}

/// Samples the gateway's resident set size (VmRSS) and its kernel-tracked peak (VmHWM), kB.
fn rss_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU seconds (user + system) process `pid` has used so far: `utime` and `stime` of
/// `/proc/PID/stat` (fields 14 and 15, counted after the parenthesised command name).
fn cpu_secs(pid: u32, clk_tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / clk_tck)
}

/// Runs one load loop, recording the CPU process `pid` used meanwhile in its recorder.
async fn measure(
    pid: Option<u32>,
    clk_tck: f64,
    load: impl Future<Output = (Duration, Recorder)>,
) -> (Duration, Recorder) {
    let before = pid.and_then(|pid| cpu_secs(pid, clk_tck));
    let (elapsed, mut recorder) = load.await;
    let after = pid.and_then(|pid| cpu_secs(pid, clk_tck));
    recorder.server_cpu_secs = after.zip(before).map(|(after, before)| after - before);
    (elapsed, recorder)
}

/// Restarts the kernel's peak-RSS count (VmHWM) of `pid` at its current RSS
/// (`/proc/PID/clear_refs`, value 5); false where that is not allowed.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The `n`th upload's user: providers in turn, a spread-out walk within each provider's users
/// (any 32 consecutive `n` are 32 different users once each provider has 11).
fn upload_user(users: &[Vec<String>], n: u64) -> String {
    let group = &users[(n % users.len() as u64) as usize];
    let k = n / users.len() as u64;
    group[(k.wrapping_mul(2_654_435_761) % group.len() as u64) as usize].clone()
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

async fn run(env: Env) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let run_id = uuid::Uuid::now_v7().simple().to_string()[..12].to_owned();
    let api = Api {
        client: client.clone(),
        base: Arc::from(env.base.trim_end_matches('/')),
        auth: Arc::from(format!("Bearer {}", env.key)),
        run: Arc::from(run_id.as_str()),
    };
    let sim = env.sim.trim_end_matches('/').to_owned();
    // Other work on the machine skews every figure; record how busy it was.
    let loadavg_start = loadavg();
    let warmup = Duration::from_secs(if env.quick { 1 } else { 3 });
    let want = |id: &str| {
        env.scenarios
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == id))
    };
    let secs = env.secs;
    let (gw_pid, fl_pid, clk) = (env.pid, env.floor_pid, env.clk_tck);
    // The floor is the gateway's work without its layers: same seeded users, same bodies.
    let floor = env.floor.as_ref().map(|base| Api {
        base: Arc::from(base.trim_end_matches('/')),
        ..api.clone()
    });
    let mut results: Vec<ScenarioResult> = Vec::new();

    // RSS sampler: peak over the whole run, and the series for the soak.
    let rss_series = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let started = Instant::now();
    if let Some(pid) = env.pid {
        let series = rss_series.clone();
        tokio::spawn(async move {
            loop {
                if let Some((rss, _)) = rss_kb(pid) {
                    series
                        .lock()
                        .expect("series")
                        .push((started.elapsed().as_secs_f64(), rss));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    let _ = client.delete(format!("{sim}/_sim/faults")).send().await;

    // Seed: users at every provider, through the API.
    eprintln!("bench: seeding {} users", env.seed_users);
    let ids = Arc::new(Mutex::new(Vec::<(String, &'static str)>::new()));
    let seeded = Arc::new(AtomicU64::new(0));
    {
        let (api, ids, seeded, target) = (api.clone(), ids.clone(), seeded.clone(), env.seed_users);
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (api, ids, seeded) = (api.clone(), ids.clone(), seeded.clone());
                tokio::spawn(async move {
                    loop {
                        let n = seeded.fetch_add(1, Ordering::Relaxed);
                        if n >= target {
                            break;
                        }
                        let provider = provider_of(n);
                        let response = api
                            .client
                            .post(api.url("/v1/users"))
                            .header("authorization", &*api.auth)
                            .header("content-type", "application/json")
                            .body(user_body(&format!("{}-seed", api.run), provider, n))
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status() == 201 => {
                                let v: Value = r.json().await.unwrap_or_default();
                                if let Some(id) = v["id"].as_str() {
                                    ids.lock().expect("ids").push((id.to_owned(), provider));
                                }
                            }
                            Ok(r) => eprintln!("bench: seed create answered {}", r.status()),
                            Err(e) => eprintln!("bench: seed create failed: {e}"),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| e.to_string())?;
        }
    }
    let seeded_ids = std::mem::take(&mut *ids.lock().expect("ids"));
    // Seeded users by provider (each was created at one), for the uploads of scenario 8.
    let mut by_provider: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (id, provider) in &seeded_ids {
        by_provider.entry(provider).or_default().push(id.clone());
    }
    let ids: Arc<Vec<String>> = Arc::new(seeded_ids.into_iter().map(|(id, _)| id).collect());
    if ids.is_empty() {
        return Err("seeding created no user: is the gateway up?".into());
    }
    eprintln!("bench: seeded {}", ids.len());
    let pick = |ids: &Arc<Vec<String>>, n: u64| {
        // A spread-out but deterministic walk over the seeded users.
        let i = (n.wrapping_mul(2_654_435_761) % ids.len() as u64) as usize;
        ids[i].clone()
    };

    // Scenarios 1, 2 and 3 run on the gateway, then on the floor (ids `1f`, `2f`, `3f-…`)
    // with the same users and bodies: (id suffix, name prefix, client, process).
    let servers: Vec<(&str, &str, Api, Option<u32>)> =
        std::iter::once(("", "", api.clone(), gw_pid))
            .chain(floor.iter().map(|f| ("f", "floor: ", f.clone(), fl_pid)))
            .collect();

    // 1. GET /v1/users/{id}, and 2. GET /v1/users?provider=…&limit=50
    let reads = [
        ("1", "get by id", "GET /v1/users/{id}"),
        ("2", "list", "GET /v1/users?provider=…&limit=50"),
    ];
    for (id, what, name) in reads.into_iter().filter(|(id, _, _)| want(id)) {
        let list = id == "2";
        for (suffix, prefix, api, pid) in &servers {
            eprintln!("bench: {id}{suffix} {prefix}{what}");
            let (elapsed, rec) = {
                let (api, ids) = (api.clone(), ids.clone());
                measure(
                    *pid,
                    clk,
                    closed_loop(32, warmup, secs, move |n| {
                        let (api, id) = (api.clone(), pick(&ids, n));
                        async move {
                            if list {
                                api.list(n).await
                            } else {
                                api.get_user(&id).await
                            }
                        }
                    }),
                )
                .await
            };
            results.push(summarise(
                &format!("{id}{suffix}"),
                &format!("{prefix}{name}"),
                Some(32),
                None,
                elapsed,
                rec,
                &[200],
            ));
        }
    }

    // 3. POST /v1/users to each simulator, no injected latency.
    if want("3") {
        for provider in ProviderId::ALL.iter().map(ProviderId::as_str) {
            for (offset, (suffix, prefix, api, pid)) in servers.iter().enumerate() {
                eprintln!("bench: 3{suffix} {prefix}create ({provider})");
                // Numbers of their own per server: both share the run's external_id space.
                let first = offset as u64 * 4_000_000_000;
                let (elapsed, rec) = {
                    let api = api.clone();
                    measure(
                        *pid,
                        clk,
                        closed_loop(32, warmup, secs, move |n| {
                            let api = api.clone();
                            async move { api.create(provider, first + n).await }
                        }),
                    )
                    .await
                };
                results.push(summarise(
                    &format!("3{suffix}-{provider}"),
                    &format!("{prefix}POST /v1/users → {provider}"),
                    Some(32),
                    None,
                    elapsed,
                    rec,
                    &[201],
                ));
            }
        }
    }

    // 4. PATCH /v1/users/{id}, two fields.
    if want("4") {
        eprintln!("bench: 4 patch");
        let (elapsed, rec) = {
            let (api, ids) = (api.clone(), ids.clone());
            measure(
                gw_pid,
                clk,
                closed_loop(32, warmup, secs, move |n| {
                    let (api, id) = (api.clone(), pick(&ids, n));
                    async move { api.patch(&id, n).await }
                }),
            )
            .await
        };
        results.push(summarise(
            "4",
            "PATCH /v1/users/{id} (2 fields)",
            Some(32),
            None,
            elapsed,
            rec,
            &[200],
        ));
    }

    // 5. POST /v1/users at 256 in flight, 300 ms of provider latency on the create call of
    // `BENCH_LATENCY_PROVIDER` (`BENCH_LATENCY_PATH`; the script picks one whose create is a
    // single call).
    if want("5") {
        eprintln!("bench: 5 create with 300 ms provider latency at 256 in flight");
        let latency_provider = env.latency_provider.clone();
        let fault = json!({"provider": latency_provider, "method": "POST",
                           "path": env.latency_path, "latency_ms": 300});
        let set = client
            .post(format!("{sim}/_sim/faults"))
            .json(&fault)
            .send()
            .await
            .map_err(|e| format!("cannot reach the simulator at {sim}: {e}"))?;
        if !set.status().is_success() {
            return Err(format!("the simulator refused the fault: {}", set.status()));
        }
        // 256 in flight shows the CPU ceiling; 64 (an expected 64 / 0.3 s within the machine's
        // create capacity) shows whether anything serialises.
        for (id, in_flight, first) in [("5", 256, 1_000_000_000), ("5b", 64, 1_500_000_000)] {
            let (elapsed, rec) = {
                let api = api.clone();
                let latency_provider = latency_provider.clone();
                measure(
                    gw_pid,
                    clk,
                    closed_loop(in_flight, warmup, secs, move |n| {
                        let api = api.clone();
                        let provider = latency_provider.clone();
                        async move { api.create(&provider, first + n).await }
                    }),
                )
                .await
            };
            results.push(summarise(
                id,
                &format!("POST /v1/users, 300 ms provider, {in_flight} in flight"),
                Some(in_flight),
                None,
                elapsed,
                rec,
                &[201],
            ));
        }
        let _ = client.delete(format!("{sim}/_sim/faults")).send().await;
    }

    // 6. Gateway-added latency for creates at 200/s; then the floor at the same rate (`6f`),
    // whose round trip is the same work's without the layers (it sends no `Server-Timing`).
    if want("6") {
        for (offset, (suffix, prefix, api, pid)) in servers.iter().enumerate() {
            eprintln!("bench: 6{suffix} {prefix}creates at 200/s");
            let first = 2_000_000_000 + offset as u64 * 4_000_000_000;
            let (elapsed, rec) = {
                let api = api.clone();
                measure(
                    *pid,
                    clk,
                    open_loop(200.0, secs, move |n| {
                        let api = api.clone();
                        async move { api.create(provider_of(n), first + n).await }
                    }),
                )
                .await
            };
            let name = if suffix.is_empty() {
                "POST /v1/users at 200/s: gateway-added latency".to_owned()
            } else {
                format!("{prefix}POST /v1/users at 200/s (round trip)")
            };
            results.push(summarise(
                &format!("6{suffix}"),
                &name,
                None,
                Some(200.0),
                elapsed,
                rec,
                &[201],
            ));
        }
    }

    // 7. Soak: a steady mix (creates, reads, lists, patches) at a fixed rate; RSS over time.
    let soak_start = started.elapsed().as_secs_f64();
    if want("7") {
        let soak_rate = env.soak_rate;
        eprintln!(
            "bench: 7 soak for {} s at {soak_rate}/s (mixed)",
            env.soak_secs
        );
        let (elapsed, rec) = {
            let (api, ids) = (api.clone(), ids.clone());
            measure(
                gw_pid,
                clk,
                open_loop(soak_rate, env.soak_secs, move |n| {
                    let (api, id) = (api.clone(), pick(&ids, n));
                    async move {
                        match n % 10 {
                            0 | 1 => api.create(provider_of(n), 3_000_000_000 + n).await,
                            2 => api.patch(&id, n).await,
                            3 => api.list(n).await,
                            _ => api.get_user(&id).await,
                        }
                    }
                }),
            )
            .await
        };
        results.push(summarise(
            "7",
            "soak: 20% create, 10% patch, 10% list, 60% get",
            None,
            Some(soak_rate),
            elapsed,
            rec,
            &[200, 201],
        ));
    }
    let soak_end = started.elapsed().as_secs_f64();

    // Scenario 7's peak is taken here, before the uploads: they hold files in memory by design,
    // and 8b checks their own bound.
    let uploads_start = started.elapsed().as_secs_f64();
    let before_uploads = env.pid.and_then(rss_kb);
    let documents = DocumentSettings::default();
    // The upload scenarios' users: round robin over the providers, so that each provider's
    // handling is in the figures (Kraken and KillB are sent the file, Carbn has no upload API).
    let upload_users: Arc<Vec<Vec<String>>> = Arc::new(
        ProviderId::ALL
            .iter()
            .filter(|p| {
                env.upload_providers
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|o| o == p.as_str()))
            })
            .filter_map(|p| by_provider.get(p.as_str()).cloned())
            .filter(|users| !users.is_empty())
            .collect(),
    );
    if upload_users.is_empty() && (want("8") || want("8b")) {
        return Err("no seeded user at the providers of BENCH_UPLOAD_PROVIDERS".into());
    }

    // 8. POST /v1/users/{id}/documents: a 1 MiB proof-of-address PDF, 8 in flight.
    if want("8") {
        eprintln!("bench: 8 document uploads of 1 MiB, 8 in flight");
        let upload = Arc::new(upload_body(&pdf_file(1024 * 1024)));
        let tally = Arc::new(Mutex::new(BTreeMap::new()));
        let (elapsed, rec) = {
            let (api, users, tally) = (api.clone(), upload_users.clone(), tally.clone());
            closed_loop(8, warmup, secs, move |n| {
                let (api, id) = (api.clone(), upload_user(&users, n));
                let (upload, tally) = (upload.clone(), tally.clone());
                async move { api.upload(&id, &upload, &tally).await }
            })
            .await
        };
        let mut result = summarise(
            "8",
            "POST /v1/users/{id}/documents, 1 MiB PDF",
            Some(8),
            None,
            elapsed,
            rec,
            &[201],
        );
        result.submissions = Some(std::mem::take(&mut *tally.lock().expect("tally")));
        results.push(result);
    }

    // 8b. 32 uploads of `documents.max_bytes` at once, `upload_rounds` times: the gateway's
    // memory must follow its upload slots, not the uploads in flight.
    let mut uploads_rss = Value::Null;
    if want("8b") {
        const AT_ONCE: u64 = 32;
        let rounds = env.upload_rounds;
        eprintln!(
            "bench: 8b {rounds} × {AT_ONCE} uploads of {} bytes at once",
            documents.max_bytes
        );
        let upload = Arc::new(upload_body(&pdf_file(documents.max_bytes as usize)));
        let tally = Arc::new(Mutex::new(BTreeMap::new()));
        let before = env.pid.and_then(rss_kb);
        // The kernel's own peak (VmHWM), restarted here: the sampler's 500 ms can miss a spike.
        let kernel_peak = env.pid.is_some_and(reset_peak_rss);
        let (t0, began) = (started.elapsed().as_secs_f64(), Instant::now());
        let mut rec = Recorder::default();
        for round in 0..rounds {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..AT_ONCE {
                let (api, id) = (api.clone(), upload_user(&upload_users, round * AT_ONCE + i));
                let (upload, tally) = (upload.clone(), tally.clone());
                tasks.spawn(async move { api.upload(&id, &upload, &tally).await });
            }
            while let Some(result) = tasks.join_next().await {
                rec.add(result.map_err(|e| format!("upload task: {e}"))?);
            }
        }
        let elapsed = began.elapsed();
        let t1 = started.elapsed().as_secs_f64();
        let after = env.pid.and_then(rss_kb);
        let mut result = summarise(
            "8b",
            &format!(
                "{AT_ONCE} uploads at once of {} MiB PDF",
                documents.max_bytes >> 20
            ),
            Some(AT_ONCE as usize),
            None,
            elapsed,
            rec,
            &[201],
        );
        result.submissions = Some(std::mem::take(&mut *tally.lock().expect("tally")));
        results.push(result);
        let sampled = rss_series
            .lock()
            .expect("series")
            .iter()
            .filter(|(t, _)| (t0..=t1).contains(t))
            .map(|(_, kb)| *kb)
            .chain(after.map(|(rss, _)| rss))
            .max();
        let kernel = kernel_peak.then(|| after.map(|(_, hwm)| hwm)).flatten();
        let before_kb = before.map(|(rss, _)| rss);
        let peak = kernel.or(sampled);
        // An upload holds its file up to three times while it is stored (the received buffer,
        // sealed in place; the statement's argument; the connection's write buffer), a
        // submission up to five (both sides opened, the provider's request body built from them,
        // the read buffer of the side being read).
        let bound_mb = ((3 * documents.max_concurrent_uploads + 5 * documents.max_concurrent_sends)
            as f64
            * documents.max_bytes as f64)
            / (1024.0 * 1024.0)
            + 64.0;
        uploads_rss = json!({
            "before_8_mb": before_uploads.map(|(rss, _)| mb(rss)),
            "before_8b_mb": before_kb.map(mb),
            "peak_8b_sampled_mb": sampled.map(mb),
            "peak_8b_kernel_mb": kernel.map(mb),
            "after_8b_mb": after.map(|(rss, _)| mb(rss)),
            "growth_8b_mb": peak.zip(before_kb).map(|(peak, before)| mb(peak) - mb(before)),
            "bound_mb": bound_mb,
            "bound": "(3 × documents.max_concurrent_uploads + 5 × documents.max_concurrent_sends) × documents.max_bytes + 64 MB",
            "max_concurrent_uploads": documents.max_concurrent_uploads,
            "max_concurrent_sends": documents.max_concurrent_sends,
            "max_bytes": documents.max_bytes,
            "rounds": rounds,
            "uploads_per_round": AT_ONCE,
        });
    }

    // RSS figures.
    let series = rss_series.lock().expect("series").clone();
    let early_mark = soak_start + (env.soak_secs as f64 / 5.0).min(60.0);
    let rss_at = |t: f64| series.iter().rfind(|(at, _)| *at <= t).map(|(_, kb)| *kb);
    let hwm = before_uploads.map(|(_, hwm)| hwm);
    let rss = json!({
        // Before scenario 8 (the uploads' own peak is under `uploads`).
        "peak_mb": hwm.map(mb),
        "peak_sampled_mb": series
            .iter()
            .filter(|(t, _)| *t < uploads_start)
            .map(|(_, kb)| *kb)
            .max()
            .map(mb),
        "soak_early_mark_secs": early_mark - soak_start,
        "soak_early_mb": rss_at(early_mark).map(mb),
        "soak_end_mb": rss_at(soak_end).map(mb),
        "soak_secs": env.soak_secs,
        "series": series.iter().map(|(t, kb)| json!([(*t * 10.0).round() / 10.0, mb(*kb)])).collect::<Vec<_>>(),
        "uploads": uploads_rss,
    });

    let report = Report::new(&env, &results, &rss);
    report.print();
    let out = json!({
        "run_id": run_id,
        "quick": env.quick,
        "machine": machine(),
        "loadavg": {"start": loadavg_start, "end": loadavg()},
        "config": {"secs": env.secs, "soak_secs": env.soak_secs, "seed_users": env.seed_users,
                   "warmup_secs": warmup.as_secs()},
        "pgbench": {"select_by_key_tps": env.pgbench_select_tps,
                    "persist_user_tps": env.pgbench_persist_tps},
        "scenarios": results,
        "rss": rss,
        "targets": report.targets,
    });
    if let Some(dir) = std::path::Path::new(&env.out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &env.out,
        serde_json::to_string_pretty(&out).expect("json") + "\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", env.out))?;
    eprintln!("bench: wrote {}", env.out);
    Ok(())
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> Option<Vec<f64>> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .filter_map(|v| v.parse().ok())
            .collect(),
    )
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines().find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
    });
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": cpu,
    })
}

struct Report {
    lines: Vec<String>,
    targets: Vec<Value>,
}

impl Report {
    fn new(env: &Env, results: &[ScenarioResult], rss: &Value) -> Self {
        let mut lines = Vec::new();
        let mut targets = Vec::new();
        let find = |id: &str| results.iter().find(|r| r.id == id);
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let mut target = |name: &str, value: Option<f64>, goal: &str, pass: Option<bool>| {
            targets.push(json!({"target": name, "value": value, "goal": goal, "pass": pass}));
        };

        lines.push(format!(
            "{:<48} {:>5} {:>8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "scenario",
            "conc",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "cpu µs/req"
        ));
        for r in results {
            let conc = r
                .concurrency
                .map(|c| c.to_string())
                .or(r.rate_per_sec.map(|r| format!("@{r:.0}")))
                .unwrap_or_default();
            let l = r.latency_ms;
            lines.push(format!(
                "{:<48} {:>5} {:>8} {:>6} {:>9.1} {:>8} {:>8} {:>8} {:>8} {:>9}",
                format!("{} {}", r.id, r.name),
                conc,
                r.requests,
                r.errors.values().sum::<u64>(),
                r.throughput_rps,
                f(l.map(|l| l.p50)),
                f(l.map(|l| l.p90)),
                f(l.map(|l| l.p99)),
                f(l.map(|l| l.max)),
                f(r.cpu_us_per_request),
            ));
            if let Some(a) = r.gateway_added_ms {
                lines.push(format!(
                    "{:<48} {:>5} {:>8} {:>6} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    "  6 gateway-added (client − provider time)",
                    "",
                    "",
                    "",
                    "",
                    a.p50,
                    a.p90,
                    a.p99,
                    a.max
                ));
            }
            if let Some(a) = r.server_side_added_ms {
                lines.push(format!(
                    "{:<48} {:>5} {:>8} {:>6} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    "  6 gateway-added (server side)", "", "", "", "", a.p50, a.p90, a.p99, a.max
                ));
            }
            if let Some(a) = r.provider_ms {
                lines.push(format!(
                    "{:<48} {:>5} {:>8} {:>6} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    "  6 provider time (as the gateway saw it)",
                    "",
                    "",
                    "",
                    "",
                    a.p50,
                    a.p90,
                    a.p99,
                    a.max
                ));
            }
            if !r.errors.is_empty() {
                lines.push(format!("    errors: {:?}", r.errors));
            }
            if let Some(n) = r.overloaded {
                lines.push(format!(
                    "    503 overloaded (slot wait ran out; not errors): {n}"
                ));
            }
            if let Some(submissions) = &r.submissions {
                lines.push(format!(
                    "    submissions in the 201s (warm-up included): {submissions:?}"
                ));
            }
        }
        lines.push(String::new());
        lines.push(format!(
            "pgbench (same run): select by key {} tps, persist user+job {} tps",
            f(env.pgbench_select_tps),
            f(env.pgbench_persist_tps)
        ));
        let peak = rss["peak_mb"].as_f64();
        let early = rss["soak_early_mb"].as_f64();
        let end = rss["soak_end_mb"].as_f64();
        lines.push(format!(
            "gateway RSS: peak {} MB (before scenario 8); soak after {:.0} s {} MB, after {} s {} MB",
            f(peak),
            rss["soak_early_mark_secs"].as_f64().unwrap_or_default(),
            f(early),
            env.soak_secs,
            f(end)
        ));
        let uploads = &rss["uploads"];
        if !uploads.is_null() {
            lines.push(format!(
                "gateway RSS in 8b: before 8 {} MB, before 8b {} MB, peak {} MB (kernel) / {} MB \
                 (sampled), after {} MB",
                f(uploads["before_8_mb"].as_f64()),
                f(uploads["before_8b_mb"].as_f64()),
                f(uploads["peak_8b_kernel_mb"].as_f64()),
                f(uploads["peak_8b_sampled_mb"].as_f64()),
                f(uploads["after_8b_mb"].as_f64()),
            ));
        }
        lines.push(String::new());

        let s1 = find("1");
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        let r1 = ratio(s1.map(|r| r.throughput_rps), env.pgbench_select_tps);
        target(
            "1: GET by id ≥ 40% of pgbench select-by-key TPS",
            r1,
            ">= 0.40",
            r1.map(|r| r >= 0.40),
        );
        let p99 = s1.and_then(|r| r.latency_ms).map(|l| l.p99);
        target(
            "1: GET by id p99 ≤ 10 ms",
            p99,
            "<= 10",
            p99.map(|p| p <= 10.0),
        );
        let creates: Vec<f64> = results
            .iter()
            .filter(|r| r.id.starts_with("3-"))
            .map(|r| r.throughput_rps)
            .collect();
        let worst = creates.iter().copied().reduce(f64::min);
        let r3 = ratio(worst, env.pgbench_persist_tps);
        target(
            "3: create (slowest provider) ≥ 40% of pgbench persist TPS",
            r3,
            ">= 0.40",
            r3.map(|r| r >= 0.40),
        );
        let r5 = find("5").map(|r| r.throughput_rps / (256.0 / 0.3));
        target(
            "5: 256 in flight at 300 ms ≥ 80% of 256 / 0.3 s",
            r5,
            ">= 0.80",
            r5.map(|r| r >= 0.80),
        );
        let r5b = find("5b").map(|r| r.throughput_rps / (64.0 / 0.3));
        target(
            "5b: 64 in flight at 300 ms ≥ 80% of 64 / 0.3 s",
            r5b,
            ">= 0.80",
            r5b.map(|r| r >= 0.80),
        );
        let added = find("6").and_then(|r| r.gateway_added_ms);
        target(
            "6: gateway-added p50 ≤ 1.5 ms",
            added.map(|a| a.p50),
            "<= 1.5",
            added.map(|a| a.p50 <= 1.5),
        );
        target(
            "6: gateway-added p99 ≤ 5 ms",
            added.map(|a| a.p99),
            "<= 5",
            added.map(|a| a.p99 <= 5.0),
        );
        target(
            "7: peak RSS (before scenario 8) ≤ 150 MB",
            peak,
            "<= 150",
            peak.map(|p| p <= 150.0),
        );
        let growth = ratio(end, early).map(|r| r - 1.0);
        target(
            "7: no RSS growth across the soak (end vs early, ≤ +5%)",
            growth,
            "<= 0.05",
            growth.map(|g| g <= 0.05),
        );
        if !uploads.is_null() {
            let growth = uploads["growth_8b_mb"].as_f64();
            let bound = uploads["bound_mb"].as_f64().unwrap_or_default();
            let slots = uploads["max_concurrent_uploads"]
                .as_u64()
                .unwrap_or_default();
            let sends = uploads["max_concurrent_sends"].as_u64().unwrap_or_default();
            let max_mib = uploads["max_bytes"].as_u64().unwrap_or_default() >> 20;
            target(
                &format!("8b: peak − before ≤ (3×{slots} + 5×{sends}) × {max_mib} MiB + 64 MB"),
                growth,
                &format!("<= {bound:.0}"),
                growth.map(|g| g <= bound),
            );
        }
        // Every scenario the floor ran, as a ratio of it and of pgbench (same run).
        let has_floor = results.iter().any(|r| r.server == "floor");
        if has_floor {
            lines.push(format!(
                "{:<40} {:>10} {:>10} {:>12} {:>12}",
                "gateway vs floor", "gw req/s", "floor req/s", "of floor", "of pgbench"
            ));
        }
        for r in results.iter().filter(|r| r.server == "floor") {
            let gateway_id = r.id.replacen('f', "", 1);
            let Some(g) = find(&gateway_id) else { continue };
            if gateway_id == "6" {
                // An open loop: both serve the rate, so the round trips are what compare.
                if let (Some(gl), Some(fl)) = (&g.latency_ms, &r.latency_ms) {
                    lines.push(format!(
                        "{:<40} p50 {:.2} against {:.2} ms (layers {:+.2}), p99 {:.2} against {:.2} ms ({:+.2})",
                        "creates at 200/s, round trip",
                        gl.p50,
                        fl.p50,
                        gl.p50 - fl.p50,
                        gl.p99,
                        fl.p99,
                        gl.p99 - fl.p99
                    ));
                }
                continue;
            }
            let pgbench = if gateway_id.starts_with('3') {
                env.pgbench_persist_tps
            } else {
                env.pgbench_select_tps
            };
            // No ratio against a floor that answered nothing in the window.
            let of_floor = (r.throughput_rps > 0.0).then(|| g.throughput_rps / r.throughput_rps);
            lines.push(format!(
                "{:<40} {:>10.1} {:>10.1} {:>12} {:>12}",
                g.name,
                g.throughput_rps,
                r.throughput_rps,
                of_floor.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                pgbench.map_or("-".into(), |p| format!(
                    "{:.1}%",
                    g.throughput_rps / p * 100.0
                )),
            ));
            let goal = if gateway_id.starts_with('3') {
                0.80
            } else {
                0.90
            };
            if gateway_id == "1" || gateway_id.starts_with('3') {
                target(
                    &format!(
                        "{gateway_id}: ≥ {:.0}% of its floor ({})",
                        goal * 100.0,
                        r.id
                    ),
                    of_floor,
                    &format!(">= {goal:.2}"),
                    of_floor.map(|r| r >= goal),
                );
            }
        }
        if has_floor {
            lines.push(String::new());
        }
        lines.push(format!(
            "{:<62} {:>10} {:>9} {:>6}",
            "target", "value", "goal", ""
        ));
        for t in &targets {
            lines.push(format!(
                "{:<62} {:>10} {:>9} {:>6}",
                t["target"].as_str().unwrap_or_default(),
                t["value"]
                    .as_f64()
                    .map_or("-".into(), |v| format!("{v:.3}")),
                t["goal"].as_str().unwrap_or_default(),
                match t["pass"].as_bool() {
                    Some(true) => "PASS",
                    Some(false) => "MISS",
                    None => "n/a",
                }
            ));
        }
        Self { lines, targets }
    }

    fn print(&self) {
        for line in &self.lines {
            println!("{line}");
        }
    }
}
