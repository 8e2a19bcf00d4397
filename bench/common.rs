//! What the benchmarks share: a small browser that signs in through the dev provider's pages, the
//! broker binary run as a process of its own, wrk, and a Redis client for seeding.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A number from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A port nothing listens on now (the OS's next free one; taken by whoever binds it first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// A browser: cookies per origin (host:port, so two brokers on 127.0.0.1 keep their own), redirects
// followed by hand, and the dev provider's "pick a test user" page answered with `user`.

pub struct Browser {
    client: reqwest::Client,
    jar: HashMap<String, Vec<(String, String)>>,
    pub user: String,
}

fn origin(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: HashMap::new(),
            user: "alice".into(),
        }
    }

    /// The `name=value` of a cookie this browser holds for `base`'s origin.
    pub fn cookie(&self, base: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(base).unwrap();
        self.jar
            .get(&origin(&url))?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, v)| format!("{n}={v}"))
    }

    /// Forgets the cookies of `base`'s origin (a new browser there; other origins keep theirs).
    pub fn forget(&mut self, base: &str) {
        let url = url::Url::parse(base).unwrap();
        self.jar.remove(&origin(&url));
    }

    fn cookie_header(&self, url: &url::Url) -> Option<String> {
        let cookies = self.jar.get(&origin(url))?;
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep_cookies(&mut self, url: &url::Url, res: &reqwest::Response) {
        let jar = self.jar.entry(origin(url)).or_default();
        for set in res.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            jar.retain(|(n, _)| n != name);
            let gone = value.is_empty() || attrs.to_ascii_lowercase().contains("max-age=0");
            if !gone {
                jar.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let u = url::Url::parse(url).unwrap();
        let mut req = self.client.get(url);
        if let Some(c) = self.cookie_header(&u) {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        self.keep_cookies(&u, &res);
        res
    }

    pub async fn post_form(&mut self, url: &str, form: &[(String, String)]) -> reqwest::Response {
        let u = url::Url::parse(url).unwrap();
        let mut req = self.client.post(url).form(form);
        if let Some(c) = self.cookie_header(&u) {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        self.keep_cookies(&u, &res);
        res
    }

    /// Goes to `url` and on, following redirects and answering the dev provider's page, until an
    /// answer that is neither, or until the answer from a URL for which `last` is true; returns
    /// that URL and answer.
    pub async fn navigate(
        &mut self,
        url: &str,
        last: impl Fn(&url::Url) -> bool,
    ) -> (String, reqwest::Response) {
        let mut url = url.to_string();
        for _ in 0..20 {
            let res = self.get(&url).await;
            let here = url::Url::parse(&url).unwrap();
            if last(&here) {
                return (url, res);
            }
            if res.status().is_redirection() {
                let to = res.headers()["location"].to_str().unwrap();
                url = here.join(to).unwrap().to_string();
                continue;
            }
            let page = res.text().await.unwrap();
            let Some(form) = dev_form(&page, &self.user) else {
                panic!("unexpected page at {url}:\n{page}");
            };
            // The form has no action: it posts to the page's own URL.
            let res = self.post_form(&url, &form).await;
            assert!(
                res.status().is_redirection(),
                "the dev provider refused the form: {}",
                res.status()
            );
            let to = res.headers()["location"].to_str().unwrap();
            url = here.join(to).unwrap().to_string();
        }
        panic!("too many redirects from {url}");
    }
}

/// The fields the dev provider's page posts for `user`, if `page` is that page.
fn dev_form(page: &str, user: &str) -> Option<Vec<(String, String)>> {
    if !page.contains("name=\"user\"") {
        return None;
    }
    let mut form: Vec<(String, String)> = Vec::new();
    for part in page.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = part.split_once("\" value=\"").unwrap();
        let value = rest
            .split('"')
            .next()
            .unwrap()
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        form.push((name.to_string(), value));
    }
    form.push(("user".into(), user.into()));
    Some(form)
}

fn is_callback(u: &url::Url) -> bool {
    u.path().starts_with("/auth/callback/")
}

/// Signs in through the dev provider's pages and returns the `Cookie` header value.
pub async fn dev_login(base: &str) -> String {
    let mut browser = Browser::new();
    let (_, res) = browser
        .navigate(&format!("{base}/auth/login?provider=dev"), is_callback)
        .await;
    assert_eq!(res.status(), 303, "bench login failed");
    browser
        .cookie(base, "broker_session")
        .expect("no session cookie after the login")
}

/// A token-mode login through the dev provider, and the code traded at `POST /auth/token`: the
/// answer's JSON (`access_token`, `refresh_token`, …).
pub async fn token_login(base: &str) -> serde_json::Value {
    let mut browser = Browser::new();
    let return_to: String =
        url::form_urlencoded::byte_serialize(format!("{base}/").as_bytes()).collect();
    let (_, res) = browser
        .navigate(
            &format!("{base}/auth/login?provider=dev&mode=token&return_to={return_to}"),
            is_callback,
        )
        .await;
    assert_eq!(res.status(), 303, "token-mode login failed");
    let landing = res.headers()["location"].to_str().unwrap();
    let code = url::Url::parse(landing)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {landing}"));
    let res = reqwest::Client::new()
        .post(format!("{base}/auth/token"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "POST /auth/token failed");
    res.json().await.unwrap()
}

/// A new access token from a broker refresh token (`POST /auth/token/refresh`).
pub async fn refresh_access_token(base: &str, refresh_token: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{base}/auth/token/refresh"))
        .json(&serde_json::json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "POST /auth/token/refresh failed");
    let body: serde_json::Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Processes: CPU time and resident memory from /proc.

/// CPU time (user + system) of process `pid` so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// VmRSS of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// The release broker binary: `BROKER_BIN`, or the one cargo built for the benches.
pub fn broker_bin() -> String {
    std::env::var("BROKER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oidc-broker").to_string())
}

/// A broker process (`oidc-broker serve`) with its configuration and log in a folder; killed when
/// dropped.
pub struct Broker {
    pub name: String,
    pub base: String,
    pub port: u16,
    child: Child,
    pub log: PathBuf,
}

impl Broker {
    /// Writes `config` (which must listen on `port`) into `dir` as `{name}.toml` and starts the
    /// broker on it; returns once `/readyz` answers 200.
    pub async fn start(name: &str, dir: &Path, port: u16, config: &str) -> Broker {
        Broker::start_under(&[], name, dir, port, config).await
    }

    /// As [`Broker::start`], the broker run by `wrapper` (`valgrind --tool=callgrind …`) when it is
    /// not empty (then given ten times as long to become ready).
    pub async fn start_under(
        wrapper: &[&str],
        name: &str,
        dir: &Path,
        port: u16,
        config: &str,
    ) -> Broker {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let bin = broker_bin();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&bin);
                cmd
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .args(["serve", "--config"])
            .arg(&path)
            .env_remove("BROKER_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({wrapper:?}): {e}"));
        let broker = Broker {
            name: name.into(),
            base: format!("http://127.0.0.1:{port}"),
            port,
            child,
            log,
        };
        let wait = if wrapper.is_empty() { 60 } else { 600 };
        broker.wait_ready(Duration::from_secs(wait)).await;
        broker
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.pid())
    }

    async fn wait_ready(&self, wait: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + wait;
        loop {
            let ready = client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("broker {} did not become ready:\n{log}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// wrk.

/// What one wrk run measured.
#[derive(Debug, Clone)]
pub struct WrkRun {
    /// Requests per second, as wrk reports it.
    pub rate: f64,
    /// Answers received.
    pub requests: u64,
    /// Answers that were not 2xx or 3xx.
    pub errors: u64,
    pub seconds: f64,
}

/// `wrk -t1 -c{connections} -d{seconds}s`, with `args` after those (headers, `-s script`, the URL).
pub fn wrk(connections: u32, seconds: f64, args: &[&str]) -> WrkRun {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{}s", seconds.round().max(1.0)),
    ]);
    cmd.args(args);
    let started = Instant::now();
    let out = cmd
        .output()
        .expect("wrk is not installed: apt-get install wrk (bench/run.sh does it)");
    let elapsed = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|v| v.trim().parse::<f64>().unwrap())
        .unwrap_or_else(|| panic!("no rate in wrk output:\n{text}\n{:?}", out.stderr));
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .map(|(n, _)| n.trim().parse().unwrap())
        .unwrap();
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap_or(0);
    WrkRun {
        rate,
        requests,
        errors,
        seconds: elapsed,
    }
}

/// A wrk script that sends `GET path` with each of `cookies` in turn (requests built once, at start).
pub fn rotating_cookies_script(dir: &Path, name: &str, path: &str, cookies: &[String]) -> PathBuf {
    let script = dir.join(format!("{name}.lua"));
    let list: Vec<String> = cookies.iter().map(|c| format!("\"{c}\"")).collect();
    std::fs::write(
        &script,
        format!(
            r#"local cookies = {{{}}}
local requests = {{}}
local i = 0
init = function(args)
  for n, c in ipairs(cookies) do
    requests[n] = wrk.format("GET", "{path}", {{ ["Cookie"] = c }})
  end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"#,
            list.join(",\n")
        ),
    )
    .unwrap();
    script
}

/// A wrk script that POSTs `body` as JSON.
pub fn post_json_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let script = dir.join(format!("{name}.lua"));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{body}'\n"
        ),
    )
    .unwrap();
    script
}

// ---------------------------------------------------------------------------------------------
// Redis, spoken directly (RESP2): pipelined writes for seeding, SCAN and UNLINK for cleaning up.

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("Redis answered {other:?}, not an integer"),
        }
    }
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) => s.clone(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("Redis answered {other:?}, not text"),
        }
    }
}

pub struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl Redis {
    pub fn connect(addr: &str) -> Redis {
        let stream = TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("the Redis figures need Redis at {addr}: {e}"));
        Redis {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.writer.write_all(&out).unwrap();
        self.read_reply()
    }

    /// Sends every command at once and reads their replies; panics on an error reply.
    pub fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) -> Vec<Reply> {
        let mut out = Vec::new();
        for c in commands {
            let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            encode_command(&mut out, &args);
        }
        self.writer.write_all(&out).unwrap();
        (0..commands.len())
            .map(|_| {
                let r = self.read_reply();
                if let Reply::Error(e) = &r {
                    panic!("Redis refused a command: {e}");
                }
                r
            })
            .collect()
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches("\r\n").to_string()
    }

    fn read_reply(&mut self) -> Reply {
        let line = self.read_line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let len: i64 = rest.parse().unwrap();
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0; usize::try_from(len).unwrap() + 2];
                self.reader.read_exact(&mut buf).unwrap();
                buf.truncate(buf.len() - 2);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                Reply::Array((0..n.max(0)).map(|_| self.read_reply()).collect())
            }
            _ => panic!("unexpected Redis reply line {line:?}"),
        }
    }

    /// `used_memory` from `INFO memory`, in bytes.
    pub fn used_memory(&mut self) -> u64 {
        let info = self.cmd(&[b"INFO", b"memory"]).text();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Deletes every key starting with `prefix`; returns how many.
    pub fn delete_prefix(&mut self, prefix: &str) -> u64 {
        let pattern = format!("{prefix}*");
        let mut cursor = "0".to_string();
        let mut deleted = 0;
        loop {
            let reply = self.cmd(&[
                b"SCAN",
                cursor.as_bytes(),
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"10000",
            ]);
            let Reply::Array(parts) = reply else {
                panic!("SCAN answered {reply:?}")
            };
            cursor = parts[0].text();
            if let Reply::Array(keys) = &parts[1]
                && !keys.is_empty()
            {
                let mut args: Vec<&[u8]> = vec![b"UNLINK"];
                let names: Vec<Vec<u8>> = keys
                    .iter()
                    .map(|k| match k {
                        Reply::Bulk(Some(b)) => b.clone(),
                        other => panic!("SCAN listed {other:?}"),
                    })
                    .collect();
                args.extend(names.iter().map(Vec::as_slice));
                deleted += u64::try_from(self.cmd(&args).int()).unwrap();
            }
            if cursor == "0" {
                return deleted;
            }
        }
    }
}
