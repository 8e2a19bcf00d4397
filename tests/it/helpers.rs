//! Spawning the broker for a test, and a few HTTP helpers.

use std::sync::Arc;

use oidc_broker::App;
use oidc_broker::clock::ManualClock;
use reqwest::header::{HeaderMap, LOCATION};

pub struct TestApp {
    pub base: String,
    pub clock: Arc<ManualClock>,
    /// A browser: cookie store, no redirects followed.
    pub browser: reqwest::Client,
    /// The SQLite file of this broker (on the SQLite backend).
    pub db: std::path::PathBuf,
    /// The running broker's state, for driving its background work directly.
    pub state: oidc_broker::state::AppState,
    _dir: Arc<tempfile::TempDir>,
    _server: tokio::task::JoinHandle<()>,
}

/// The `[server]` line that a config parsed outside [`spawn`] needs for development-only features
/// (loopback issuers, the dev provider, no sealing key).
pub const DEV_ENV: &str = "[server]\nenvironment = \"development\"\n";

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Options for [`spawn`]: extra TOML appended to a base config that has `[server]` and `[store]`
/// filled in; it must add at least one provider.
pub struct Spawn {
    pub toml: String,
    /// Extra lines for the `[server]` table.
    pub server: String,
    pub session: String,
    pub db_dir: Option<Arc<tempfile::TempDir>>,
    /// Run on SQLite whatever `BROKER_TEST_BACKEND` says (for tests that read the SQLite file).
    pub sqlite_only: bool,
    /// What the test's own TOML says about stores.
    pub own_stores: OwnStores,
}

/// Store tables a test writes itself; the suite's backend fills in the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnStores {
    None,
    /// The test gives `[sessions]`; `[store]` follows the suite's backend.
    Sessions,
    /// The test gives `[store]` (and `[sessions]` if any).
    All,
}

impl Spawn {
    pub fn providers(toml: impl Into<String>) -> Self {
        Spawn {
            toml: toml.into(),
            server: String::new(),
            session: "idle_timeout = \"30m\"\nabsolute_lifetime = \"7d\"\n".into(),
            db_dir: None,
            sqlite_only: false,
            own_stores: OwnStores::None,
        }
    }
    pub fn session(mut self, s: &str) -> Self {
        self.session = s.into();
        self
    }
    pub fn server_extra(mut self, lines: &str) -> Self {
        self.server = lines.into();
        self
    }
    pub fn own_sessions(mut self) -> Self {
        self.own_stores = OwnStores::Sessions;
        self
    }
    pub fn external_store(mut self) -> Self {
        self.own_stores = OwnStores::All;
        self
    }
    pub fn sqlite_only(mut self) -> Self {
        self.sqlite_only = true;
        self
    }
    pub fn reuse_db(mut self, app: &TestApp) -> Self {
        self.db_dir = Some(app._dir.clone());
        self
    }
}

/// The stores the suite runs on, chosen by `BROKER_TEST_BACKEND`: `sqlite` (the default, the
/// embedded store), `postgres`, or `postgres+redis` — against the real servers on this machine
/// (`BROKER_TEST_POSTGRES_URL`, `BROKER_TEST_REDIS_URL` override where they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    PostgresRedis,
}

pub fn backend() -> Backend {
    match std::env::var("BROKER_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok("postgres+redis") => Backend::PostgresRedis,
        Ok(other) => panic!(
            "BROKER_TEST_BACKEND={other} is not a backend: use sqlite, postgres or postgres+redis"
        ),
    }
}

pub fn postgres_url() -> String {
    std::env::var("BROKER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("BROKER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// Fails, saying how to start it, when a server the chosen backend needs does not answer.
fn require_server(url: &str, what: &str, start: &str) {
    let u = url::Url::parse(url).unwrap();
    let addr = format!(
        "{}:{}",
        u.host_str().unwrap_or("127.0.0.1"),
        u.port()
            .unwrap_or(if what == "PostgreSQL" { 5432 } else { 6379 })
    );
    if std::net::TcpStream::connect(&addr).is_err() {
        panic!("{what} is not answering at {addr}: this test run needs it ({start})");
    }
}

/// `[store]` (and `[sessions]`) lines for a broker whose data lives under `dir`: a SQLite file in
/// it, or a Postgres schema and Redis prefix named after it, so each test is isolated and two
/// brokers given the same `dir` share their data.
fn store_toml(dir: &std::path::Path, sqlite_only: bool, own: OwnStores) -> String {
    if own == OwnStores::All {
        return String::new();
    }
    let backend = if sqlite_only {
        Backend::Sqlite
    } else {
        backend()
    };
    if backend == Backend::Sqlite {
        return format!(
            "[store]\nurl = \"sqlite://{}\"\n",
            dir.join("broker.db").display()
        );
    }
    let id = &oidc_broker::crypto::sha256_b64(&dir.display().to_string())[..12];
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    require_server(
        &postgres_url(),
        "PostgreSQL",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    );
    let mut toml = format!(
        "[store]\nurl = \"{}\"\nschema = \"t_{id}\"\n",
        postgres_url()
    );
    if backend == Backend::PostgresRedis && own == OwnStores::None {
        require_server(
            &redis_url(),
            "Redis",
            "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
        );
        toml.push_str(&format!(
            "[sessions]\nurl = \"{}\"\nprefix = \"test:{id}:\"\n",
            redis_url()
        ));
    }
    toml
}

pub fn dev_provider() -> Spawn {
    Spawn::providers("[providers.dev]\nkind = \"dev\"\n")
}

pub async fn spawn(opts: Spawn) -> TestApp {
    spawn_on(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        opts,
    )
    .await
}

/// [`spawn`] on a listener the test bound (when a peer must know the broker's URL first).
pub async fn spawn_on(listener: tokio::net::TcpListener, opts: Spawn) -> TestApp {
    try_spawn_on(listener, opts)
        .await
        .unwrap_or_else(|e| panic!("the broker did not start on {:?}: {e}", backend()))
}

/// [`spawn`], with a broker that does not start being an error rather than a panic.
pub async fn try_spawn(opts: Spawn) -> Result<TestApp, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    try_spawn_on(listener, opts).await
}

async fn try_spawn_on(listener: tokio::net::TcpListener, opts: Spawn) -> Result<TestApp, String> {
    // Quiet unless asked: BROKER_TEST_LOG=debug shows what the broker logs.
    if let Ok(filter) = std::env::var("BROKER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let dir = opts
        .db_dir
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
    let db = dir.path().join("broker.db");
    let toml = format!(
        "[server]\nlisten = \"{addr}\"\npublic_url = \"{base}\"\nallowed_origins = [\"http://app.test:3000\"]\nenvironment = \"development\"\n{}\n\
         [session]\n{}\n{}{}",
        opts.server,
        opts.session,
        store_toml(dir.path(), opts.sqlite_only, opts.own_stores),
        opts.toml
    );
    let config = oidc_broker::config::from_toml_str(&toml, Vec::new())
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let clock = Arc::new(ManualClock::default());
    let app = App::build(config, clock.clone())
        .await
        .map_err(|e| e.to_string())?;
    let state = app.state().clone();
    let server = tokio::spawn(async move {
        app.run(listener, std::future::pending()).await.unwrap();
    });
    Ok(TestApp {
        base,
        clock,
        browser: browser(),
        db,
        state,
        _dir: dir,
        _server: server,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.browser.get(self.url(path)).send().await.unwrap()
    }

    /// `GET /auth/me` as `fetch` would send it.
    /// The browser's own logout (same-site, with the CSRF header).
    pub async fn logout(&self) -> reqwest::Response {
        self.browser
            .post(self.url("/auth/logout"))
            .header("x-csrf", "1")
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self) -> reqwest::Response {
        self.me_with(&self.browser).await
    }

    pub async fn me_with(&self, client: &reqwest::Client) -> reqwest::Response {
        client
            .get(self.url("/auth/me"))
            .header("sec-fetch-mode", "cors")
            .send()
            .await
            .unwrap()
    }

    /// Starts a login and returns the provider URL the browser is sent to.
    pub async fn start_login(&self, query: &str) -> String {
        let res = self.get(&format!("/auth/login?{query}")).await;
        assert_eq!(
            res.status(),
            303,
            "login start: {}",
            res.text().await.unwrap()
        );
        location(res.headers())
    }

    /// The full dev-provider login, through its "pick a user" page, as a browser does it.
    pub async fn dev_login(&self, user: &str) -> reqwest::Response {
        self.dev_login_query(user, "provider=dev").await
    }

    /// [`TestApp::dev_login`] starting from `/auth/login?{query}`; returns the callback's answer.
    pub async fn dev_login_query(&self, user: &str, query: &str) -> reqwest::Response {
        let authorize = self.start_login(query).await;
        dev_pick_user(&self.browser, &authorize, user).await
    }
}

/// From the dev provider's authorize URL: picks `user` on its page as a browser does, and returns
/// the broker's answer to the callback.
pub async fn dev_pick_user(
    client: &reqwest::Client,
    authorize: &str,
    user: &str,
) -> reqwest::Response {
    let page = client
        .get(authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = Form::parse(&page, authorize);
    let mut fields = form.fields.clone();
    fields.push(("user".into(), user.into()));
    let res = client
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "dev authorize");
    let callback = location(res.headers());
    client.get(&callback).send().await.unwrap()
}

pub fn location(headers: &HeaderMap) -> String {
    headers
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// All `Set-Cookie` headers of a response.
pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn with_query_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    u.to_string()
}

/// The first HTML form of a page: its absolute action, method and named inputs (buttons excluded).
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub method: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn parse(html: &str, page_url: &str) -> Form {
        let start = html
            .find("<form")
            .unwrap_or_else(|| panic!("no form in page:\n{html}"));
        let end = html[start..]
            .find("</form>")
            .map(|e| start + e)
            .unwrap_or(html.len());
        let form = &html[start..end];
        let tag_end = form.find('>').unwrap();
        let action = attr(&form[..tag_end], "action").unwrap_or_default();
        let method = attr(&form[..tag_end], "method").unwrap_or_else(|| "get".into());
        let action = url::Url::parse(page_url)
            .unwrap()
            .join(&action)
            .unwrap()
            .to_string();
        let mut fields = Vec::new();
        let mut rest = form;
        while let Some(i) = rest.find("<input") {
            let tag = &rest[i..];
            let close = tag.find('>').unwrap();
            let tag = &tag[..close];
            if let Some(name) = attr(tag, "name") {
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
            rest = &rest[i + close..];
        }
        Form {
            action,
            method,
            fields,
        }
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.fields.retain(|(k, _)| k != name);
        self.fields.push((name.into(), value.into()));
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let pat = format!(" {name}={quote}");
        if let Some(i) = tag.find(&pat) {
            let v = &tag[i + pat.len()..];
            let end = v.find(quote)?;
            return Some(decode_entities(&v[..end]));
        }
    }
    None
}

pub fn decode_entities(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Follows a provider's automatic redirect (the fake provider approves at once) and returns the
/// callback URL it sends the browser back to.
pub async fn provider_redirect(authorize: &str) -> String {
    let res = browser().get(authorize).send().await.unwrap();
    assert_eq!(
        res.status(),
        303,
        "provider authorize: {}",
        res.text().await.unwrap_or_default()
    );
    location(res.headers())
}

/// A whole login through a fake provider; returns the broker's callback response.
pub async fn fake_login(app: &TestApp, query: &str) -> reqwest::Response {
    let authorize = app.start_login(query).await;
    let callback = provider_redirect(&authorize).await;
    app.browser.get(&callback).send().await.unwrap()
}

/// The value the named cookie is set to in a response.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    set_cookies(headers).into_iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|v| v.split(';').next().unwrap_or_default().to_string())
    })
}

pub async fn json(res: reqwest::Response) -> serde_json::Value {
    let status = res.status();
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
}

/// The `oidc-broker` binary serving a development config on a free loopback port, with the dev
/// provider, a SQLite store and `extra` TOML appended; stdout and stderr captured. Returns once
/// `/readyz` answers 200.
pub struct ServedBinary {
    pub child: tokio::process::Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

pub async fn serve_binary(extra: &str, env: &[(&str, &str)]) -> ServedBinary {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::peers::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nenvironment = \"development\"\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n[store]\nurl = \"sqlite://{}/b.db\"\n{extra}",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_oidc-broker"));
    cmd.args(["serve", "--config"])
        .arg(&path)
        .env_remove("BROKER_LOG")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let client = browser();
    for _ in 0..100 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return ServedBinary {
                child,
                base,
                _dir: dir,
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the broker binary did not become ready at {base}");
}

impl ServedBinary {
    /// Stops it as a service manager does (SIGTERM, so it writes out what it buffered) and
    /// returns everything it wrote.
    pub async fn logs(self) -> String {
        let child = self.child;
        let pid = child.id().expect("the broker is running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(15), child.wait_with_output())
                .await
                .expect("the broker stops within 15 s of SIGTERM")
                .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }
}
