//! The JSON API under `/api/v1`, behind one authentication gate.
//!
//! Every request goes through [`dispatch`]: a short list of public routes (login, setup,
//! the OpenAPI document, static files), then the gate (session cookie, idle/absolute expiry,
//! CSRF on POST/PUT/DELETE), then the protected routes. There is no other way in, so a route
//! cannot forget to check. Unauthenticated requests get a 401 JSON answer, never a redirect.
//!
//! Answers about the UPS, logs and configuration come from the monitor through the same
//! request channel as the CLI ([`crate::ipc::Request`]); security events go to it as
//! `Request::LogEvent`. No client value is ever used as a file path: downloads have fixed
//! names, and settings that name a program or a file (shutdown command, command files,
//! certificate files, device) are refused by the monitor's `ConfigSet` with 403 — they change
//! in the INI file only.

// Early-return error answers are whole HTTP responses, built once per request; boxing them
// would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::hyper::body::Bytes;
use warp::path::FullPath;
use warp::{Filter, Rejection, Reply};

use super::auth::{self, Auth, FailOutcome, Refusal, Session, SessionProblem};
use super::{assets, peer_addr};
use crate::credentials::{CredError, CredentialStore, SetupToken, TokenProblem, policy};
use crate::ipc::{Request, Response as IpcResponse};

/// Requests to the monitor, each with its reply slot.
pub type MonitorTx = mpsc::UnboundedSender<(Request, oneshot::Sender<IpcResponse>)>;

/// Minimum time between two starts of one expensive operation (plus: one at a time).
pub const EXPENSIVE_INTERVAL: Duration = Duration::from_secs(2);

/// Longest username text that reaches a log.
const MAX_LOGGED_NAME: usize = 128;

/// The web clock: real monotonic time plus an offset in whole seconds read from a file on
/// each call (`upsguard run --web-test-clock-file`, hidden, for tests only). Without a file
/// it is plain `Instant::now()`.
#[derive(Debug, Clone, Default)]
pub struct WebClock {
    offset_file: Option<PathBuf>,
}

impl WebClock {
    pub fn new(offset_file: Option<PathBuf>) -> Self {
        Self { offset_file }
    }

    pub fn now(&self) -> Instant {
        let now = Instant::now();
        let Some(f) = &self.offset_file else {
            return now;
        };
        let secs = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        now.checked_add(Duration::from_secs(secs)).unwrap_or(now)
    }
}

/// Shared state of the API.
#[derive(Debug)]
pub struct Ctx {
    auth: Mutex<Auth>,
    creds: Arc<Mutex<CredentialStore>>,
    monitor: MonitorTx,
    clock: WebClock,
    /// The served certificate (for the security page and reload without restart).
    tls: Option<Arc<super::TlsManager>>,
    /// Per expensive operation: busy flag and last start.
    expensive: Mutex<HashMap<&'static str, (bool, Option<Instant>)>>,
}

impl Ctx {
    pub fn new(
        creds: Arc<Mutex<CredentialStore>>,
        monitor: MonitorTx,
        idle_timeout: Duration,
        clock: WebClock,
        tls: Option<Arc<super::TlsManager>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            auth: Mutex::new(Auth::new(idle_timeout)),
            creds,
            monitor,
            clock,
            tls,
            expensive: Mutex::new(HashMap::new()),
        })
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn ask(&self, req: Request) -> Result<IpcResponse, Resp> {
        let (tx, rx) = oneshot::channel();
        if self.monitor.send((req, tx)).is_err() {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is stopping",
            ));
        }
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(r)) => Ok(r),
            _ => Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no answer from the monitor",
            )),
        }
    }

    /// Fire-and-forget security event. `message` and `fields` may hold user text: the event
    /// log escapes it on write, and the monitor escapes it for tracing.
    fn event(&self, id: &str, message: String, fields: BTreeMap<String, String>, src: IpAddr) {
        let (tx, _rx) = oneshot::channel();
        let _ = self.monitor.send((
            Request::LogEvent {
                id: id.to_string(),
                message,
                fields,
                source: Some(src.to_string()),
            },
            tx,
        ));
    }

    /// Claim an expensive operation: 429 when one is running or the last started too
    /// recently.
    fn claim(self: &Arc<Self>, name: &'static str) -> Result<ExpensiveGuard, Resp> {
        let now = self.clock.now();
        let mut map = self
            .expensive
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = map.entry(name).or_insert((false, None));
        if slot.0 {
            return Err(too_many(
                "this operation is already running; try again when it has finished",
                1,
            ));
        }
        if let Some(last) = slot.1 {
            let since = now.saturating_duration_since(last);
            if since < EXPENSIVE_INTERVAL {
                let wait = (EXPENSIVE_INTERVAL - since).as_secs().max(1);
                return Err(too_many("this operation was run moments ago", wait));
            }
        }
        *slot = (true, Some(now));
        Ok(ExpensiveGuard {
            ctx: Arc::clone(self),
            name,
        })
    }
}

/// Clears the busy flag however the operation ends.
struct ExpensiveGuard {
    ctx: Arc<Ctx>,
    name: &'static str,
}

impl Drop for ExpensiveGuard {
    fn drop(&mut self) {
        let mut map = self
            .ctx
            .expensive
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get_mut(self.name) {
            slot.0 = false;
        }
    }
}

type Resp = warp::reply::Response;

/// One request as the dispatcher sees it.
struct Req {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
    peer: SocketAddr,
}

impl Req {
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON body. `Content-Type: application/json` is required: a browser cannot send it
    /// cross-origin without a CORS preflight we never answer, so no other site can drive these
    /// endpoints (e.g. to guess passwords through its visitors' browsers).
    fn json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Resp> {
        let ct = self.header("content-type").unwrap_or("");
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("the request body is not the expected JSON: {e}"),
            )
        })
    }

    fn query_param(&self, key: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| percent_decode(v))
    }

    fn limit(&self, default: usize, max: usize) -> Result<usize, Resp> {
        match self.query_param("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(error(
                    StatusCode::BAD_REQUEST,
                    &format!("limit must be a whole number from 1 to {max}"),
                )),
            },
        }
    }
}

/// `application/x-www-form-urlencoded` / query decoding ('+' is a space).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_resp(status: StatusCode, v: &serde_json::Value) -> Resp {
    warp::reply::with_status(warp::reply::json(v), status).into_response()
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_resp(status, &serde_json::json!({ "error": msg }))
}

fn with_retry_after(mut r: Resp, secs: u64) -> Resp {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn too_many(msg: &str, retry_after_s: u64) -> Resp {
    with_retry_after(
        json_resp(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({ "error": msg, "retry_after_s": retry_after_s }),
        ),
        retry_after_s,
    )
}

fn refusal(r: Refusal) -> Resp {
    match r {
        Refusal::Locked { retry_after_s } => with_retry_after(
            json_resp(
                StatusCode::LOCKED,
                &serde_json::json!({
                    "error": "the account is locked after repeated failed logins; try again later",
                    "retry_after_s": retry_after_s,
                }),
            ),
            retry_after_s,
        ),
        Refusal::Throttled { retry_after_s } => too_many(
            "too many login attempts from this address; slow down",
            retry_after_s,
        ),
    }
}

fn session_cookie(id: &str) -> String {
    format!(
        "{}={id}; HttpOnly; Secure; SameSite=Strict; Path=/",
        auth::COOKIE_NAME
    )
}

fn clear_cookie() -> String {
    format!(
        "{}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
        auth::COOKIE_NAME
    )
}

fn set_cookie(mut r: Resp, value: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Username as it may appear in a log: bounded; escaping is the log's job.
fn loggable_name(name: &str) -> String {
    name.chars().take(MAX_LOGGED_NAME).collect()
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// Monitor answer → HTTP: `ok` → 200 with its data, otherwise 400 with its error.
fn from_monitor(r: IpcResponse) -> Resp {
    if r.ok {
        let data = if r.data.is_null() {
            serde_json::json!({ "ok": true })
        } else {
            r.data
        };
        json_resp(StatusCode::OK, &data)
    } else {
        let message = r.error.as_deref().unwrap_or("request refused");
        // A key only the configuration file may change: forbidden whatever its value.
        let status = if r.data.get("file_only") == Some(&serde_json::Value::Bool(true)) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        match r.data.get("key").and_then(serde_json::Value::as_str) {
            // Which field was refused, for the form (the key is one the client sent).
            Some(key) => json_resp(status, &serde_json::json!({ "error": message, "key": key })),
            None => error(status, message),
        }
    }
}

/// The warp filter for everything (API, form login, static files).
pub fn routes(ctx: Arc<Ctx>) -> impl Filter<Extract = (Resp,), Error = Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .and(peer_addr())
        .and_then(
            move |method: Method,
                  path: FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: Bytes,
                  peer: SocketAddr| {
                let ctx = Arc::clone(&ctx);
                async move {
                    let req = Req {
                        method,
                        path: path.as_str().to_string(),
                        query,
                        headers,
                        body,
                        peer,
                    };
                    Ok::<_, Rejection>(dispatch(&ctx, req).await)
                }
            },
        )
}

/// The one gate: public routes, then authentication, then everything else.
async fn dispatch(ctx: &Arc<Ctx>, req: Req) -> Resp {
    let m = req.method.clone();
    let path = req.path.clone();
    let changes_state = !matches!(m, Method::GET | Method::HEAD | Method::OPTIONS);
    // Browsers label where a request comes from; no other origin (another port on this host
    // is "same-site") may change anything here, the form login included.
    if changes_state
        && req
            .header("sec-fetch-site")
            .is_some_and(|v| !matches!(v.trim(), "same-origin" | "none"))
    {
        return error(StatusCode::FORBIDDEN, "cross-site requests are refused");
    }
    // Public routes.
    match (&m, path.as_str()) {
        (&Method::POST, "/api/v1/login") => return login_api(ctx, &req).await,
        (&Method::POST, "/login") => return login_form(ctx, &req).await,
        (&Method::GET, "/api/v1/setup") => {
            let needed = !ctx
                .creds
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .has_admin();
            return json_resp(StatusCode::OK, &serde_json::json!({ "needed": needed }));
        }
        (&Method::POST, "/api/v1/setup") => return setup(ctx, &req).await,
        (&Method::GET, "/api/v1/openapi.json" | "/openapi.json") => {
            return json_resp(StatusCode::OK, &openapi());
        }
        _ => {}
    }
    if !path.starts_with("/api/")
        && (m == Method::GET || m == Method::HEAD)
        && let Some(a) = assets::get(path.trim_start_matches('/'))
    {
        return assets::response(a);
    }

    // The gate.
    let now = ctx.clock.now();
    let Some(sid) = req.cookie(auth::COOKIE_NAME) else {
        return error(StatusCode::UNAUTHORIZED, "not logged in");
    };
    let activity = req
        .header(auth::BACKGROUND_HEADER)
        .is_none_or(|v| v.trim() != "1");
    let session = match ctx.auth().check(&sid, now, activity) {
        Ok(s) => s,
        Err(SessionProblem::Expired) => {
            return set_cookie(
                error(
                    StatusCode::UNAUTHORIZED,
                    "the session has ended (idle timeout or lifetime); log in again",
                ),
                &clear_cookie(),
            );
        }
        Err(SessionProblem::Missing) => {
            return error(StatusCode::UNAUTHORIZED, "not logged in");
        }
    };
    if changes_state && !auth::csrf_ok(&session, req.header("x-csrf-token")) {
        return error(
            StatusCode::FORBIDDEN,
            "missing or wrong X-CSRF-Token header",
        );
    }
    match protected(ctx, &req, &session).await {
        Ok(r) | Err(r) => r,
    }
}

async fn protected(ctx: &Arc<Ctx>, req: &Req, session: &Session) -> Result<Resp, Resp> {
    let path = req.path.as_str();
    let m = &req.method;
    let r = match (m, path) {
        (&Method::POST, "/api/v1/logout") => {
            ctx.auth().logout(&session.id);
            ctx.event(
                "logout",
                format!("logout of {}", loggable_name(&session.username)),
                fields(&[("username", &loggable_name(&session.username))]),
                req.peer.ip(),
            );
            set_cookie(
                json_resp(StatusCode::OK, &serde_json::json!({ "ok": true })),
                &clear_cookie(),
            )
        }
        (&Method::GET, "/api/v1/session") => {
            let now = ctx.clock.now();
            let idle = ctx.auth().idle_timeout();
            let left = auth::ABSOLUTE_LIFETIME
                .saturating_sub(now.saturating_duration_since(session.created));
            json_resp(
                StatusCode::OK,
                &serde_json::json!({
                    "username": session.username,
                    "csrf": session.csrf,
                    "idle_timeout_s": idle.as_secs(),
                    "expires_in_s": left.as_secs(),
                }),
            )
        }
        (&Method::PUT, "/api/v1/security/password") => change_password(ctx, req, session).await?,
        (&Method::GET, "/api/v1/security/certificate") => match &ctx.tls {
            Some(t) => {
                let mut v = t.cert_info().to_json();
                v["days_until_expiry"] = serde_json::json!(t.days_until_expiry());
                json_resp(StatusCode::OK, &v)
            }
            None => error(StatusCode::NOT_FOUND, "no certificate in use"),
        },
        // Re-read the fixed files in <data-dir>/tls/ (after `upsguard cert import|generate`).
        (&Method::POST, "/api/v1/security/certificate/reload") => {
            let Some(t) = ctx.tls.clone() else {
                return Err(error(StatusCode::NOT_FOUND, "no certificate in use"));
            };
            let _g = ctx.claim("cert-reload")?;
            match tokio::task::spawn_blocking(move || t.reload()).await {
                Ok(Ok(info)) => json_resp(StatusCode::OK, &info.to_json()),
                Ok(Err(e)) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("certificate not reloaded (the current one stays in use): {e}"),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (&Method::GET, "/api/v1/status") => from_monitor(ctx.ask(Request::Status).await?),
        (&Method::GET, "/api/v1/events") => {
            let limit = req.limit(200, 10_000)?;
            let r = ctx.ask(Request::Events { limit: Some(limit) }).await?;
            if !r.ok {
                return Ok(from_monitor(r));
            }
            json_resp(
                StatusCode::OK,
                &serde_json::json!({
                    "events": r.data.get("records").cloned().unwrap_or_default(),
                    "skipped": r.data.get("skipped").cloned().unwrap_or_default(),
                }),
            )
        }
        (&Method::GET, "/api/v1/events.csv") => {
            let limit = req.limit(10_000, 10_000)?;
            let _g = ctx.claim("events.csv")?;
            let r = ctx.ask(Request::Events { limit: Some(limit) }).await?;
            csv_download(r, "events.csv")
        }
        (&Method::GET, "/api/v1/datalog") => {
            let limit = req.limit(500, 100_000)?;
            let r = ctx.ask(Request::Datalog { limit: Some(limit) }).await?;
            if !r.ok {
                return Ok(from_monitor(r));
            }
            let csv = r.data.get("csv").and_then(|v| v.as_str()).unwrap_or("");
            json_resp(StatusCode::OK, &csv_to_json(csv))
        }
        (&Method::GET, "/api/v1/datalog.csv") => {
            let limit = req.limit(100_000, 100_000)?;
            let _g = ctx.claim("datalog.csv")?;
            let r = ctx.ask(Request::Datalog { limit: Some(limit) }).await?;
            csv_download(r, "datalog.csv")
        }
        (&Method::GET, "/api/v1/ups/settings") => {
            let r = ctx.ask(Request::SettingsGet).await?;
            if r.ok {
                json_resp(StatusCode::OK, &serde_json::json!({ "settings": r.data }))
            } else {
                from_monitor(r)
            }
        }
        (&Method::PUT, "/api/v1/ups/settings") => {
            #[derive(Deserialize)]
            struct B {
                name: String,
                value: String,
            }
            let b: B = req.json()?;
            let r = from_monitor(
                ctx.ask(Request::SettingsSet {
                    name: b.name.clone(),
                    value: b.value.clone(),
                })
                .await?,
            );
            if r.status() == StatusCode::OK {
                let name = loggable_name(&session.username);
                let src = req.peer.ip();
                ctx.event(
                    "configuration_changed",
                    format!(
                        "UPS setting {} set to {} from the web UI by {name} from {src}",
                        b.name, b.value
                    ),
                    fields(&[("username", &name), ("keys", &b.name)]),
                    src,
                );
            }
            r
        }
        (&Method::POST, "/api/v1/ups/selftest") => {
            let _g = ctx.claim("selftest")?;
            from_monitor(ctx.ask(Request::SelfTest).await?)
        }
        (&Method::POST, "/api/v1/ups/calibrate") => {
            #[derive(Deserialize)]
            struct B {
                #[serde(default)]
                abort: bool,
            }
            let b: B = if req.body.is_empty() {
                B { abort: false }
            } else {
                req.json()?
            };
            let _g = ctx.claim("calibrate")?;
            from_monitor(ctx.ask(Request::Calibrate { abort: b.abort }).await?)
        }
        (&Method::POST, "/api/v1/shutdown/now") => {
            from_monitor(ctx.ask(Request::ShutdownNow).await?)
        }
        (&Method::POST, "/api/v1/ups/sleep") => {
            #[derive(Deserialize)]
            struct B {
                hours: u32,
                #[serde(default)]
                graceful: bool,
            }
            let b: B = req.json()?;
            if !(1..=99).contains(&b.hours) {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "hours must be a whole number from 1 to 99",
                ));
            }
            from_monitor(
                ctx.ask(Request::Sleep {
                    hours: b.hours,
                    graceful: b.graceful,
                })
                .await?,
            )
        }
        // Every enabled channel, one try each; the answer lists each channel's result.
        (&Method::POST, "/api/v1/notifications/test") => {
            let _g = ctx.claim("notify-test")?;
            from_monitor(ctx.ask(Request::NotifyTest).await?)
        }
        (&Method::GET, "/api/v1/notifications/smtp-password") => {
            let set = ctx
                .creds
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .smtp_password()
                .is_some();
            json_resp(StatusCode::OK, &serde_json::json!({ "set": set }))
        }
        (&Method::PUT, "/api/v1/notifications/smtp-password") => {
            smtp_password(ctx, req, session).await?
        }
        (_, p) if p.starts_with("/api/v1/config/") => {
            let section = p.trim_start_matches("/api/v1/config/");
            if section.is_empty() || section.contains('/') {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    "no such configuration section",
                ));
            }
            let section = percent_decode(section);
            match *m {
                Method::GET => from_monitor(ctx.ask(Request::ConfigGet { section }).await?),
                Method::PUT => {
                    let body: serde_json::Map<String, serde_json::Value> = req.json()?;
                    let mut values = BTreeMap::new();
                    for (k, v) in body {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Number(n) => n.to_string(),
                            serde_json::Value::Bool(b) => b.to_string(),
                            _ => {
                                return Err(error(
                                    StatusCode::BAD_REQUEST,
                                    "each value must be a string, number or boolean",
                                ));
                            }
                        };
                        values.insert(k, text);
                    }
                    let r = ctx
                        .ask(Request::ConfigSet {
                            section,
                            values,
                            username: Some(loggable_name(&session.username)),
                            source: Some(req.peer.ip().to_string()),
                        })
                        .await?;
                    // A new idle timeout applies at once, to the live session too.
                    if r.ok
                        && r.data["section"] == "Web"
                        && let Some(min) = r.data["values"]["idle_timeout_min"]
                            .as_str()
                            .and_then(|v| v.parse::<u64>().ok())
                    {
                        ctx.auth()
                            .set_idle_timeout(Duration::from_secs(min.max(1) * 60));
                    }
                    from_monitor(r)
                }
                _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET or PUT"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    Ok(r)
}

fn csv_download(r: IpcResponse, name: &'static str) -> Resp {
    if !r.ok {
        return from_monitor(r);
    }
    let csv = r
        .data
        .get("csv")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let mut resp = warp::reply::Response::new(csv.into());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    // A fixed name: nothing from the client reaches a path or a header.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// `{columns, rows}` from the data-log CSV (header line, then one row per sample).
fn csv_to_json(csv: &str) -> serde_json::Value {
    let mut lines = csv.lines();
    let columns: Vec<&str> = lines
        .next()
        .map(|l| l.split(',').collect())
        .unwrap_or_default();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    serde_json::json!({ "columns": columns, "rows": rows })
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    takeover: bool,
}

/// What a credential check ended in (shared by the API and the form login).
enum LoginResult {
    Ok { session: Session, took_over: bool },
    Refused(Refusal),
    Failed { locked_now: bool },
    SessionActive,
    Internal(String),
}

/// The one login path: throttle/lock, verify (one Argon2 run, off the runtime), count,
/// single-session rule, rotate, log.
async fn do_login(ctx: &Arc<Ctx>, req: &Req, b: &LoginBody) -> LoginResult {
    let src = req.peer.ip();
    let attempt = match ctx.auth().begin_attempt(src, ctx.clock.now()) {
        Ok(a) => a,
        Err(r) => return LoginResult::Refused(r),
    };
    let creds = Arc::clone(&ctx.creds);
    let (u, p) = (b.username.clone(), b.password.clone());
    let ok = tokio::task::spawn_blocking(move || {
        creds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .verify(&u, &p)
    })
    .await
    .unwrap_or(false);
    let now = ctx.clock.now();
    let name = loggable_name(&b.username);
    let outcome = ctx.auth().finish_attempt(attempt, ok, now);
    if !ok {
        ctx.event(
            "login_failed",
            format!("failed login for user {name} from {src}"),
            fields(&[("username", &name)]),
            src,
        );
        let locked_now = outcome == Some(FailOutcome::LockedNow);
        if locked_now {
            ctx.event(
                "account_locked",
                format!(
                    "administrator account locked for {} s after {} failed logins",
                    auth::LOCK_DURATION.as_secs(),
                    auth::MAX_FAILURES
                ),
                fields(&[("username", &name)]),
                src,
            );
        }
        return LoginResult::Failed { locked_now };
    }
    let own = req.cookie(auth::COOKIE_NAME);
    let result = {
        let mut a = ctx.auth();
        let other_active = match a.active_session(now) {
            Some(s) => own.as_deref().is_none_or(|c| c != s.id),
            None => false,
        };
        if other_active && !b.takeover {
            return LoginResult::SessionActive;
        }
        a.login(&b.username, now).map(|s| (s, other_active))
    };
    match result {
        Ok((session, took_over)) => {
            let msg = if took_over {
                format!("login by {name} from {src}, taking over the active session")
            } else {
                format!("login by {name} from {src}")
            };
            ctx.event("login", msg, fields(&[("username", &name)]), src);
            LoginResult::Ok { session, took_over }
        }
        Err(e) => LoginResult::Internal(e),
    }
}

async fn login_api(ctx: &Arc<Ctx>, req: &Req) -> Resp {
    let b: LoginBody = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    match do_login(ctx, req, &b).await {
        LoginResult::Ok { session, took_over } => set_cookie(
            json_resp(
                StatusCode::OK,
                &serde_json::json!({
                    "csrf": session.csrf,
                    "username": session.username,
                    "took_over": took_over,
                    "idle_timeout_s": ctx.auth().idle_timeout().as_secs(),
                }),
            ),
            &session_cookie(&session.id),
        ),
        LoginResult::Refused(r) => refusal(r),
        LoginResult::Failed { locked_now: true } => refusal(Refusal::Locked {
            retry_after_s: auth::LOCK_DURATION.as_secs(),
        }),
        LoginResult::Failed { locked_now: false } => {
            error(StatusCode::UNAUTHORIZED, "wrong username or password")
        }
        LoginResult::SessionActive => error(
            StatusCode::CONFLICT,
            "another session is active; only one session at a time is allowed. Log in with \
             \"takeover\": true to end it",
        ),
        LoginResult::Internal(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// `POST /login` with a form body, answered with a 303. The failure is counted before the
/// answer is sent, so a client that never follows the redirect is counted just the same.
async fn login_form(ctx: &Arc<Ctx>, req: &Req) -> Resp {
    let text = String::from_utf8_lossy(&req.body);
    let mut form: HashMap<String, String> = HashMap::new();
    for kv in text.split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            form.insert(percent_decode(k), percent_decode(v));
        }
    }
    let b = LoginBody {
        username: form.remove("username").unwrap_or_default(),
        password: form.remove("password").unwrap_or_default(),
        takeover: form
            .get("takeover")
            .is_some_and(|v| v == "true" || v == "on"),
    };
    let (location, cookie) = match do_login(ctx, req, &b).await {
        LoginResult::Ok { session, .. } => ("/", Some(session_cookie(&session.id))),
        LoginResult::Refused(Refusal::Locked { .. }) | LoginResult::Failed { locked_now: true } => {
            ("/?login=locked", None)
        }
        LoginResult::Refused(Refusal::Throttled { .. }) => ("/?login=throttled", None),
        LoginResult::Failed { .. } => ("/?login=failed", None),
        LoginResult::SessionActive => ("/?login=session-active", None),
        LoginResult::Internal(_) => ("/?login=error", None),
    };
    let mut r = warp::reply::Response::new(Default::default());
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    match cookie {
        Some(c) => set_cookie(r, &c),
        None => r,
    }
}

#[derive(Deserialize)]
struct SetupBody {
    token: String,
    username: String,
    password: String,
}

/// First administrator through the one-time setup token. The token is a credential: a wrong
/// one counts like a failed login.
async fn setup(ctx: &Arc<Ctx>, req: &Req) -> Resp {
    let b: SetupBody = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    if ctx
        .creds
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .has_admin()
    {
        return error(
            StatusCode::CONFLICT,
            "an administrator already exists; setup is closed",
        );
    }
    // Policy first: a rejected password must not burn an attempt or the token.
    if let Err(e) = policy::check_credentials(&b.username, &b.password) {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": e.to_string(), "rule": e.rule() }),
        );
    }
    let src = req.peer.ip();
    let attempt = match ctx.auth().begin_attempt(src, ctx.clock.now()) {
        Ok(a) => a,
        Err(r) => return refusal(r),
    };
    let creds = Arc::clone(&ctx.creds);
    let (t, u, p) = (b.token.clone(), b.username.clone(), b.password.clone());
    let result = tokio::task::spawn_blocking(move || {
        let mut store = creds.lock().unwrap_or_else(PoisonError::into_inner);
        SetupToken::redeem(&mut store, &t, &u, &p)
    })
    .await
    .unwrap_or_else(|e| Err(CredError::Crypto(e.to_string())));
    let now = ctx.clock.now();
    let name = loggable_name(&b.username);
    match result {
        Ok(()) | Err(CredError::BackupNotUpdated(_)) => {
            let _ = ctx.auth().finish_attempt(attempt, true, now);
            ctx.event(
                "credentials_changed",
                format!("administrator {name} created through the setup token from {src}"),
                fields(&[("username", &name)]),
                src,
            );
            json_resp(StatusCode::OK, &serde_json::json!({ "ok": true }))
        }
        Err(CredError::SetupToken(problem)) => {
            let outcome = ctx.auth().finish_attempt(attempt, false, now);
            ctx.event(
                "login_failed",
                format!("setup with an invalid token from {src}"),
                BTreeMap::new(),
                src,
            );
            if outcome == Some(FailOutcome::LockedNow) {
                ctx.event(
                    "account_locked",
                    "setup locked after repeated invalid tokens".to_string(),
                    BTreeMap::new(),
                    src,
                );
                return refusal(Refusal::Locked {
                    retry_after_s: auth::LOCK_DURATION.as_secs(),
                });
            }
            let status = match problem {
                TokenProblem::AdminExists => StatusCode::CONFLICT,
                _ => StatusCode::UNAUTHORIZED,
            };
            error(status, &CredError::SetupToken(problem).to_string())
        }
        Err(CredError::Policy(e)) => {
            let _ = ctx.auth().finish_attempt(attempt, true, now);
            json_resp(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": e.to_string(), "rule": e.rule() }),
            )
        }
        Err(e) => {
            let _ = ctx.auth().finish_attempt(attempt, true, now);
            tracing::error!("web: setup failed: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    }
}

/// `PUT /api/v1/security/password {current_password, new_password}`: checks the current
/// password through the same counted path as a login.
async fn change_password(ctx: &Arc<Ctx>, req: &Req, session: &Session) -> Result<Resp, Resp> {
    #[derive(Deserialize)]
    struct B {
        current_password: String,
        new_password: String,
    }
    let b: B = req.json()?;
    let username = session.username.clone();
    policy::check_password(&username, &b.new_password).map_err(|e| {
        json_resp(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": e.to_string(), "rule": e.rule() }),
        )
    })?;
    let src = req.peer.ip();
    let attempt = ctx
        .auth()
        .begin_attempt(src, ctx.clock.now())
        .map_err(refusal)?;
    let creds = Arc::clone(&ctx.creds);
    let (old, new) = (b.current_password, b.new_password);
    let result = tokio::task::spawn_blocking(move || {
        creds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .change_password(&old, &new)
    })
    .await
    .unwrap_or_else(|e| Err(CredError::Crypto(e.to_string())));
    let now = ctx.clock.now();
    let name = loggable_name(&username);
    match result {
        Ok(()) | Err(CredError::BackupNotUpdated(_)) => {
            let _ = ctx.auth().finish_attempt(attempt, true, now);
            ctx.event(
                "credentials_changed",
                format!("administrator password changed by {name}"),
                fields(&[("username", &name)]),
                src,
            );
            Ok(json_resp(
                StatusCode::OK,
                &serde_json::json!({ "ok": true }),
            ))
        }
        Err(CredError::WrongPassword) => {
            let outcome = ctx.auth().finish_attempt(attempt, false, now);
            ctx.event(
                "login_failed",
                format!("wrong current password on password change by {name}"),
                fields(&[("username", &name)]),
                src,
            );
            if outcome == Some(FailOutcome::LockedNow) {
                ctx.event(
                    "account_locked",
                    "administrator account locked after repeated failures".to_string(),
                    fields(&[("username", &name)]),
                    src,
                );
                return Ok(refusal(Refusal::Locked {
                    retry_after_s: auth::LOCK_DURATION.as_secs(),
                }));
            }
            Ok(error(
                StatusCode::UNAUTHORIZED,
                "the current password is not correct",
            ))
        }
        Err(CredError::Policy(e)) => {
            let _ = ctx.auth().finish_attempt(attempt, true, now);
            Ok(json_resp(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": e.to_string(), "rule": e.rule() }),
            ))
        }
        Err(e) => {
            let _ = ctx.auth().finish_attempt(attempt, true, now);
            Ok(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
        }
    }
}

/// `PUT /api/v1/notifications/smtp-password {password}`: write-only; an empty text removes
/// it. The value goes straight into the encrypted credential store, never into the INI, and
/// is never returned (GET only says whether one is stored).
async fn smtp_password(ctx: &Arc<Ctx>, req: &Req, session: &Session) -> Result<Resp, Resp> {
    #[derive(Deserialize)]
    struct B {
        password: String,
    }
    let b: B = req.json()?;
    let creds = Arc::clone(&ctx.creds);
    let pw = zeroize::Zeroizing::new(b.password);
    let clearing = pw.is_empty();
    let result = tokio::task::spawn_blocking(move || {
        creds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_smtp_password(Some(pw.as_str()))
    })
    .await
    .unwrap_or_else(|e| Err(CredError::Crypto(e.to_string())));
    match result {
        Ok(()) | Err(CredError::BackupNotUpdated(_)) => {
            let name = loggable_name(&session.username);
            ctx.event(
                "credentials_changed",
                format!(
                    "SMTP password for notifications {} by {name}",
                    if clearing { "removed" } else { "changed" }
                ),
                fields(&[("username", &name)]),
                req.peer.ip(),
            );
            Ok(json_resp(
                StatusCode::OK,
                &serde_json::json!({ "ok": true, "set": !clearing }),
            ))
        }
        Err(e @ CredError::InvalidUser { .. }) => {
            Err(error(StatusCode::BAD_REQUEST, &e.to_string()))
        }
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

/// The OpenAPI 3 document served at `/api/v1/openapi.json` (and `/openapi.json`).
pub fn openapi() -> serde_json::Value {
    use serde_json::json;
    let ok = |d: &str| json!({ "description": d });
    let std = |summary: &str| {
        json!({
            "summary": summary,
            "responses": {
                "200": ok("OK"), "400": ok("Rejected (error names the rule)"),
                "401": ok("Not logged in"), "403": ok("Missing or wrong X-CSRF-Token")
            }
        })
    };
    let limited = |summary: &str| {
        json!({
            "summary": summary,
            "responses": {
                "200": ok("OK"), "401": ok("Not logged in"),
                "429": ok("Busy or run moments ago (single-flight, rate-limited)")
            }
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "upsguard API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every route except login, setup and this document needs the \
                ug_session cookie; POST/PUT/DELETE also need the X-CSRF-Token header (from \
                login or GET /session). Automatic refreshes should send \
                X-Upsguard-Background: 1 so they do not count as activity for the idle \
                timeout. Errors are {\"error\": text}."
        },
        "servers": [{ "url": "/api/v1" }],
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": "ug_session" },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token" }
            }
        },
        "security": [{ "session": [], "csrf": [] }],
        "paths": {
            "/login": { "post": {
                "summary": "Log in: {username, password, takeover?}",
                "security": [],
                "responses": {
                    "200": ok("{csrf, username, took_over, idle_timeout_s} and the ug_session cookie"),
                    "401": ok("Wrong username or password"),
                    "409": ok("Another session is active (send takeover: true)"),
                    "423": ok("Account locked: {error, retry_after_s}"),
                    "429": ok("Too many attempts from this address: {error, retry_after_s}")
                }
            }},
            "/logout": { "post": std("End the session") },
            "/session": { "get": std("{username, csrf, idle_timeout_s, expires_in_s}") },
            "/setup": {
                "get": { "summary": "{needed}", "security": [], "responses": { "200": ok("OK") } },
                "post": { "summary": "First administrator: {token, username, password}", "security": [],
                    "responses": { "200": ok("Created"), "400": ok("Policy rule failed: {error, rule}"),
                        "401": ok("Invalid token"), "409": ok("Already set up"), "423": ok("Locked") } }
            },
            "/status": { "get": std("Live UPS status (StatusView)") },
            "/events": { "get": std("{events, skipped}; ?limit=1..10000") },
            "/events.csv": { "get": limited("Event log as CSV; ?limit=") },
            "/datalog": { "get": std("{columns, rows}; ?limit=1..100000") },
            "/datalog.csv": { "get": limited("Data log as CSV; ?limit=") },
            "/ups/settings": {
                "get": std("{settings: [{name, value, permitted}]}"),
                "put": std("{name, value}: only values the UPS permits")
            },
            "/ups/selftest": { "post": limited("Start the battery self-test") },
            "/ups/calibrate": { "post": limited("Start (or with {abort: true} stop) a runtime calibration") },
            "/ups/sleep": { "post": std("{hours: 1..99, graceful}") },
            "/shutdown/now": { "post": std("Start the graceful shutdown now") },
            "/config/{section}": {
                "parameters": [{ "name": "section", "in": "path", "required": true,
                    "schema": { "type": "string" } }],
                "get": std("{section, values}"),
                "put": std("{key: value, …}: typed, range-checked, all or nothing; saved and reloaded. Keys naming a program or a file (os_shutdown_command, command_file, an event's command file, cert_file, key_file, pkcs12_file, device) are refused with 403 {error, key}: they change in upsguard.ini only")
            },
            "/notifications/test": { "post": limited("Send a test message on every enabled channel (one try each): {results: [{channel, ok, detail, attempts}]}") },
            "/notifications/smtp-password": {
                "get": std("{set}: whether an SMTP password is stored (it is never returned)"),
                "put": std("{password}: store the SMTP AUTH password in the encrypted credential store; \"\" removes it")
            },
            "/security/certificate": { "get": std("The served certificate: subject, issuer, sans, validity, key, signature, fingerprint, days_until_expiry") },
            "/security/certificate/reload": { "post": limited("Serve the files in <data-dir>/tls/ again (after `upsguard cert import|generate`)") },
            "/security/password": { "put": std("{current_password, new_password}; counts like a login") },
            "/openapi.json": { "get": { "summary": "This document", "security": [],
                "responses": { "200": ok("OK") } } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a+b%0D%0Ac%zz"), "a b\r\nc%zz");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn openapi_lists_the_routes() {
        let doc = openapi();
        for p in [
            "/login",
            "/status",
            "/config/{section}",
            "/events.csv",
            "/notifications/test",
            "/notifications/smtp-password",
        ] {
            assert!(doc["paths"].get(p).is_some(), "{p}");
        }
    }
}
