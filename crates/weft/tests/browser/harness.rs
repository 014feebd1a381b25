//! The browser harness: a `chromedriver` child process, headless Chromium
//! sessions through WebDriver (fantoccini), waits with deadlines, and
//! screenshots saved as test artifacts.
//!
//! Each test runs through [`run`]: it gets its own chromedriver on a free
//! port and a [`Ctx`] to open browser sessions with. When the test body
//! fails (an error or a panic), every open session is photographed and its
//! console log saved before the sessions are closed; then the test fails.
//! The artifacts go to `target/browser-artifacts/<test>-<step>.png`.

use std::{
    future::Future,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;

/// How often waits look again.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Longest a whole browser test may take.
const TEST_DEADLINE: Duration = Duration::from_secs(300);

/// One browser test at a time: each runs several Chromiums and nodes, and
/// the machine may have only two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const INSTALL_HINT: &str = "the browser tests need Debian's `chromium` and `chromium-driver` \
    packages: run `apt-get install -y --no-install-recommends chromium chromium-driver` \
    (.ci/run installs them), or point CHROMEDRIVER and CHROMIUM at the binaries";

/// Runs one browser test: starts chromedriver, runs `body`, and on failure
/// saves a screenshot and the console log of every open session before
/// failing the test.
pub(crate) fn run<F, Fut>(test: &'static str, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let driver = ChromeDriver::start().unwrap_or_else(|e| panic!("{e:#}"));
        let ctx = Ctx {
            test,
            driver_url: driver.url.clone(),
            chromium: driver.chromium.clone(),
            sessions: Arc::new(Mutex::new(Vec::new())),
            kept: Arc::new(Mutex::new(Vec::new())),
        };
        clear_artifacts(test);
        let started = Instant::now();
        let task = tokio::spawn(body(ctx.clone()));
        let abort = task.abort_handle();
        let outcome = tokio::time::timeout(TEST_DEADLINE, task).await;
        let failure = match outcome {
            Err(_) => {
                abort.abort();
                Some(format!("the test did not end within {TEST_DEADLINE:?}"))
            }
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(format!("{e:#}")),
            Ok(Err(e)) => Some(match e.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()),
                Err(e) => e.to_string(),
            }),
        };
        if failure.is_some() {
            ctx.capture_failure().await;
        }
        ctx.close_all(failure.is_none()).await;
        ctx.drop_kept();
        drop(ctx);
        drop(driver);
        if let Some(message) = failure {
            panic!(
                "{test} failed after {:.1}s: {message}\n(screenshots and console logs in {})",
                started.elapsed().as_secs_f64(),
                artifacts_dir().display()
            );
        }
        eprintln!(
            "{test}: passed in {:.1}s (screenshots in {})",
            started.elapsed().as_secs_f64(),
            artifacts_dir().display()
        );
    });
}

/// `target/browser-artifacts` (under `CARGO_TARGET_DIR` if set), created.
pub(crate) fn artifacts_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("create the browser artifacts dir");
    dir.canonicalize().unwrap_or(dir)
}

/// Removes the artifacts of an earlier run of `test`.
fn clear_artifacts(test: &str) {
    let prefix = format!("{test}-");
    let Ok(entries) = std::fs::read_dir(artifacts_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A program: `$ENV` if set, else the first of `names` on PATH, else the
/// Debian path.
fn find_program(env: &str, names: &[&str], fallback: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    Path::new(fallback)
        .is_file()
        .then(|| PathBuf::from(fallback))
}

/// A `chromedriver` child process on a free loopback port; it and the
/// browsers it started are killed when this is dropped.
pub(crate) struct ChromeDriver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl ChromeDriver {
    /// Starts `chromedriver --port=0` and reads the port it picked from its
    /// "started successfully on port N" line.
    fn start() -> anyhow::Result<ChromeDriver> {
        let Some(program) =
            find_program("CHROMEDRIVER", &["chromedriver"], "/usr/bin/chromedriver")
        else {
            bail!("chromedriver not found: {INSTALL_HINT}");
        };
        let Some(chromium) = find_program(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
            "/usr/bin/chromium",
        ) else {
            bail!("chromium not found: {INSTALL_HINT}");
        };
        let mut command = Command::new(&program);
        command
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Its own process group, so that dropping it also ends the browsers.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {}: {INSTALL_HINT}", program.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end, so that chromedriver never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let port = loop {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = line
                        .split_once("started successfully on port ")
                        .and_then(|(_, rest)| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                    {
                        break port;
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "{} did not say which port it listens on within 30 s; it printed: {:?}",
                        program.display(),
                        seen
                    );
                }
            }
        };
        Ok(ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0)); this ends
        // any browser it left behind too.
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            if pgid > 1 {
                // SAFETY: kill(2) with a negative pid signals that process
                // group only; it touches no memory.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a test body gets: the test's name and the browser sessions.
#[derive(Clone)]
pub(crate) struct Ctx {
    test: &'static str,
    driver_url: String,
    chromium: PathBuf,
    sessions: Arc<Mutex<Vec<Browser>>>,
    kept: Arc<Mutex<Vec<Box<dyn Send + Sync>>>>,
}

impl Ctx {
    /// Keeps `value` (a node, its data dir) alive until the failure report
    /// and the console logs are taken, so that they show the state the test
    /// saw rather than nodes going away; dropped last to first.
    pub(crate) fn keep<T: Send + Sync + 'static>(&self, value: T) -> Arc<T> {
        let value = Arc::new(value);
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(value.clone()));
        value
    }

    fn drop_kept(&self) {
        loop {
            let last = self
                .kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match last {
                Some(value) => drop(value),
                None => break,
            }
        }
    }

    /// A new headless Chromium session, with a profile of its own; `label`
    /// names its failure screenshots.
    pub(crate) async fn browser(&self, label: &str) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir().context("temp profile dir")?;
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--window-size=1280,1000".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // A debugging aid only, never set by the tests or CI: e.g.
        // "MAP *.app.localhost 127.0.0.1" to look past a name Chromium
        // refuses to resolve.
        if let Ok(rules) = std::env::var("WEFT_BROWSER_HOST_RULES") {
            eprintln!("WEFT_BROWSER_HOST_RULES is set: --host-resolver-rules={rules}");
            args.push(format!("--host-resolver-rules={rules}"));
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
            },
            "goog:loggingPrefs": { "browser": "ALL" },
            // No wait in the browser itself is longer than the tests' own.
            "timeouts": { "pageLoad": 30_000, "script": 30_000, "implicit": 0 },
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(caps);
        let client =
            tokio::time::timeout(Duration::from_secs(60), builder.connect(&self.driver_url))
                .await
                .map_err(|_| anyhow!("Chromium did not start within 60 s"))?
                .with_context(|| {
                    format!("cannot open a Chromium session through {}", self.driver_url)
                })?;
        let session = client
            .session_id()
            .await?
            .ok_or_else(|| anyhow!("the WebDriver session has no id"))?;
        let browser = Browser {
            client,
            test: self.test,
            label: label.to_owned(),
            driver_url: self.driver_url.clone(),
            session,
            _profile: Arc::new(profile),
        };
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(browser.clone());
        Ok(browser)
    }

    fn all(&self) -> Vec<Browser> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn capture_failure(&self) {
        for b in self.all() {
            let step = format!("failure-{}", b.label);
            if let Err(e) = b.screenshot(&step).await {
                eprintln!("no failure screenshot of {}: {e:#}", b.label);
            }
            match tokio::time::timeout(Duration::from_secs(10), b.page_state()).await {
                Ok(Ok(state)) => eprintln!("--- {} at failure: {state}", b.label),
                Ok(Err(e)) => eprintln!("--- {} at failure: cannot read the page: {e:#}", b.label),
                Err(_) => eprintln!("--- {} at failure: the page did not answer", b.label),
            }
            match b.save_console().await {
                Ok(lines) => {
                    eprintln!("--- console of {} ({} lines):", b.label, lines.len());
                    for line in lines.iter().rev().take(40).rev() {
                        eprintln!("    {line}");
                    }
                }
                Err(e) => eprintln!("no console log of {}: {e:#}", b.label),
            }
        }
    }

    /// Saves the console logs (unless a failure report did) and closes
    /// every session.
    async fn close_all(&self, save_console: bool) {
        let all =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(PoisonError::into_inner));
        for b in all {
            if save_console {
                if let Err(e) = b.save_console().await {
                    eprintln!("no console log of {}: {e:#}", b.label);
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), b.client.close()).await;
        }
    }
}

/// One Chromium session (one window).
#[derive(Clone)]
pub(crate) struct Browser {
    pub(crate) client: Client,
    test: &'static str,
    label: String,
    driver_url: String,
    session: String,
    _profile: Arc<TempDir>,
}

impl Browser {
    pub(crate) async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("{}: open {url}", self.label))
    }

    /// Runs a script in the page (`arguments[i]` are `args`) and returns
    /// its result.
    pub(crate) async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("{}: run script {script:?}", self.label))
    }

    /// The `textContent` of the first element matching `css`, or None.
    pub(crate) async fn text(&self, css: &str) -> anyhow::Result<Option<String>> {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Waits until an element matching `css` is displayed and enabled.
    pub(crate) async fn wait_visible(
        &self,
        css: &str,
        deadline: Duration,
    ) -> anyhow::Result<fantoccini::elements::Element> {
        let what = format!("{}: {css} to be visible and enabled", self.label);
        wait_for(&what, deadline, || async {
            let found = self.client.find_all(Locator::Css(css)).await?;
            for e in found {
                if e.is_displayed().await? && e.is_enabled().await? {
                    return Ok(Some(e));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Waits for `css` to be clickable, then clicks it.
    pub(crate) async fn click(&self, css: &str, deadline: Duration) -> anyhow::Result<()> {
        let e = self.wait_visible(css, deadline).await?;
        e.click()
            .await
            .with_context(|| format!("{}: click {css}", self.label))
    }

    /// Waits until the text of `css` satisfies `check`; returns that text.
    pub(crate) async fn wait_text(
        &self,
        css: &str,
        what: &str,
        deadline: Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let until = Instant::now() + deadline;
        let mut last;
        loop {
            match self.text(css).await {
                Ok(Some(text)) if check(&text) => return Ok(text),
                Ok(text) => last = format!("text {text:?}"),
                Err(e) => last = format!("error {e:#}"),
            }
            if Instant::now() >= until {
                bail!(
                    "timed out after {deadline:?} waiting for {}: {css} {what}; last: {}",
                    self.label,
                    last
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves a screenshot as `<test>-<step>.png` in the artifacts dir.
    pub(crate) async fn screenshot(&self, step: &str) -> anyhow::Result<PathBuf> {
        let png = tokio::time::timeout(Duration::from_secs(20), self.client.screenshot())
            .await
            .map_err(|_| anyhow!("{}: screenshot timed out", self.label))?
            .with_context(|| format!("{}: screenshot", self.label))?;
        let path = artifacts_dir().join(format!("{}-{step}.png", self.test));
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        eprintln!("screenshot: {}", path.display());
        Ok(path)
    }

    /// The browser's console messages since the last call (chromedriver's
    /// log endpoint; `goog:loggingPrefs` asks it to keep them).
    pub(crate) async fn console_log(&self) -> anyhow::Result<Vec<String>> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let reply: Value = reqwest::Client::new()
            .post(&url)
            .json(&json!({ "type": "browser" }))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .json()
            .await?;
        let entries = reply["value"]
            .as_array()
            .ok_or_else(|| anyhow!("unexpected log answer: {reply}"))?;
        Ok(entries
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect())
    }

    /// Writes the console messages to `<test>-<label>-console.log`; returns them.
    async fn save_console(&self) -> anyhow::Result<Vec<String>> {
        let lines = self.console_log().await?;
        let path = artifacts_dir().join(format!("{}-{}-console.log", self.test, self.label));
        std::fs::write(&path, lines.join("\n"))
            .with_context(|| format!("write {}", path.display()))?;
        Ok(lines)
    }

    /// The URL and the visible text of the page, for failure reports.
    async fn page_state(&self) -> anyhow::Result<String> {
        let url = self.client.current_url().await?;
        let text = self
            .js(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await?;
        let mut text = text.as_str().unwrap_or("").replace('\n', " | ");
        if text.len() > 3000 {
            let mut cut = 3000;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        Ok(format!("{url}\n    {text}"))
    }
}

/// Calls `probe` every [`POLL`] until it returns `Some`, up to `deadline`.
/// Errors from `probe` count as "not yet" (the page may be mid-render); the
/// last one is reported if the deadline passes.
pub(crate) async fn wait_for<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let until = Instant::now() + deadline;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= until {
            return Err(match last_error {
                Some(e) => {
                    anyhow!("timed out after {deadline:?} waiting for {what} (last error: {e:#})")
                }
                None => anyhow!("timed out after {deadline:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs blocking work (a `weft` process, a CLI call) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
