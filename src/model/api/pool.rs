//! Many servers behind one client: each request goes to the server with the fewest requests in
//! flight among those not resting; a failure (connection error, timeout, HTTP 429 or 5xx) rests
//! that server for a while and retries the request on another, with exponential backoff when
//! every server is resting. Other HTTP errors (a 400 names a bad request) fail at once with the
//! server's message. Every outcome is counted for the end-of-run report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

struct Server {
    url: String,
    in_flight: AtomicUsize,
    /// Not used before this instant (after a failure), and how many failures in a row.
    rest: Mutex<(Option<Instant>, u32)>,
    served: AtomicUsize,
}

pub(crate) struct Pool {
    client: reqwest::Client,
    servers: Vec<Server>,
    /// Attempts per request on one server before it counts as failed there (lm-eval's
    /// max_retries: attempts in all); with several servers, that many per server.
    max_retries: usize,
    api_key: Option<String>,
    /// Failures by kind ("HTTP 503", "timeout", "connection"): for the report.
    failures: Mutex<BTreeMap<String, usize>>,
}

/// Why a request failed for good.
#[derive(Debug)]
pub(crate) struct Failed(pub String);

impl Pool {
    pub(crate) fn new(
        urls: Vec<String>,
        timeout: Duration,
        max_retries: usize,
        api_key: Option<String>,
    ) -> Result<Pool, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Pool {
            client,
            servers: urls
                .into_iter()
                .map(|url| Server {
                    url,
                    in_flight: AtomicUsize::new(0),
                    rest: Mutex::new((None, 0)),
                    served: AtomicUsize::new(0),
                })
                .collect(),
            max_retries: max_retries.max(1),
            api_key,
            failures: Mutex::new(BTreeMap::new()),
        })
    }

    /// The least loaded server not resting, else the one whose rest ends first (and how long
    /// until then).
    fn pick(&self) -> (usize, Duration) {
        let now = Instant::now();
        let resting_until = |s: &Server| s.rest.lock().map(|r| r.0).unwrap_or(None);
        let ready = (0..self.servers.len())
            .filter(|&i| resting_until(&self.servers[i]).is_none_or(|t| t <= now))
            .min_by_key(|&i| self.servers[i].in_flight.load(Ordering::SeqCst));
        if let Some(i) = ready {
            return (i, Duration::ZERO);
        }
        (0..self.servers.len())
            .map(|i| (i, resting_until(&self.servers[i]).unwrap_or(now) - now))
            .min_by_key(|&(_, d)| d)
            .expect("at least one server")
    }

    fn failed(&self, i: usize, kind: String, retry_after: Option<Duration>) {
        *self.failures.lock().unwrap().entry(kind).or_default() += 1;
        let mut r = self.servers[i].rest.lock().unwrap();
        r.1 += 1;
        // lm-eval's wait: 0.5 * 2^n seconds, between 1 and 10
        let backoff = Duration::from_secs_f64((0.5 * 2f64.powi(r.1 as i32)).clamp(1.0, 10.0));
        r.0 = Some(Instant::now() + retry_after.unwrap_or(backoff));
    }

    fn succeeded(&self, i: usize) {
        *self.servers[i].rest.lock().unwrap() = (None, 0);
        self.servers[i].served.fetch_add(1, Ordering::SeqCst);
    }

    /// POST `body` to every server's URL until one answers 200 with a `R`.
    pub(crate) async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        body: &B,
    ) -> Result<R, Failed> {
        let attempts = self.max_retries * self.servers.len();
        let mut last = String::new();
        for _ in 0..attempts {
            let (i, wait) = self.pick();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let s = &self.servers[i];
            s.in_flight.fetch_add(1, Ordering::SeqCst);
            let mut req = self.client.post(&s.url).json(body);
            if let Some(k) = &self.api_key {
                req = req.bearer_auth(k);
            }
            let result = req.send().await;
            s.in_flight.fetch_sub(1, Ordering::SeqCst);
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection"
                    };
                    last = format!("{}: {kind}: {e}", s.url);
                    self.failed(i, kind.into(), None);
                    continue;
                }
            };
            let status = resp.status();
            if status.is_success() {
                match resp.bytes().await {
                    Ok(bytes) => match serde_json::from_slice::<R>(&bytes) {
                        Ok(r) => {
                            self.succeeded(i);
                            return Ok(r);
                        }
                        Err(e) => {
                            return Err(Failed(format!(
                                "{}: the answer is not what an OpenAI-compatible server sends ({e}): {}",
                                s.url,
                                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                            )))
                        }
                    },
                    Err(e) => {
                        let kind = if e.is_timeout() { "timeout" } else { "connection" };
                        last = format!("{}: {kind} while reading the answer: {e}", s.url);
                        self.failed(i, kind.into(), None);
                        continue;
                    }
                }
            }
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|secs| Duration::from_secs_f64(secs.clamp(0.0, 60.0)));
            let text = resp.text().await.unwrap_or_default();
            last = format!(
                "{}: HTTP {status}: {}",
                s.url,
                text.chars().take(300).collect::<String>()
            );
            if status.as_u16() == 429 || status.is_server_error() {
                self.failed(i, format!("HTTP {}", status.as_u16()), retry_after);
                continue;
            }
            return Err(Failed(last));
        }
        Err(Failed(format!(
            "no server answered after {attempts} attempts; last: {last}"
        )))
    }

    /// "N requests retried (HTTP 503 x2, timeout x1); answered by a: 10, b: 12", or None when
    /// nothing failed and there is one server.
    pub(crate) fn report(&self) -> Option<String> {
        let failures = self.failures.lock().unwrap();
        if failures.is_empty() && self.servers.len() == 1 {
            return None;
        }
        let mut m = String::new();
        if failures.is_empty() {
            m.push_str("no failed attempts");
        } else {
            let n: usize = failures.values().sum();
            let kinds: Vec<String> = failures.iter().map(|(k, c)| format!("{k} x{c}")).collect();
            m.push_str(&format!(
                "{n} failed attempts retried ({})",
                kinds.join(", ")
            ));
        }
        if self.servers.len() > 1 {
            let each: Vec<String> = self
                .servers
                .iter()
                .map(|s| format!("{}: {}", s.url, s.served.load(Ordering::SeqCst)))
                .collect();
            m.push_str(&format!("; answered by {}", each.join(", ")));
        }
        Some(m)
    }
}
