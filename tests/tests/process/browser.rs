//! A real headless Chromium, driven through `chromedriver` (both installed by scripts/test),
//! loads the quickstart's dashboard: every worker gets a row with a valid state, a wrong admin
//! token is refused on the page, and the "Run now" button with the right token starts a manual
//! run that the page then shows. The queue worker's row shows its queue (depth, a depth chart)
//! and its dead jobs (the quickstart runs with `QUICKSTART_SPAM=1`), and a dead job's "Requeue"
//! button sends it to the queue again as a new job. Leaves a screenshot in `target/dashboard.png`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{QUICKSTART_WORKERS, Scratch, example, free_addr, get, replicas_tables};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const STATES: &[&str] = &[
    "starting", "idle", "running", "backoff", "paused", "stale", "failed", "stopped",
];
/// The worker whose "Run now" button is pressed: a cron worker firing every 10 s, so a manual
/// run stands out.
const WORKER: &str = "digest";
/// The quickstart's queue worker, consuming the `emails` queue.
const CONSUMER: &str = "send_email";
/// How long any one condition may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// The path of `program` on `PATH`, or a failure telling how to install it.
fn installed(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not on PATH: run the suite with scripts/test, which installs \
                 Debian's `chromium` and `chromium-driver` packages (through \
                 scripts/install-test-deps)"
            )
        })
}

/// Every worker of the quickstart, in registration order.
fn all_workers() -> Vec<&'static str> {
    QUICKSTART_WORKERS.to_vec()
}

/// `/workers` as JSON, or why it is not available.
fn workers_json(addr: &str) -> Result<Value, String> {
    match get(addr, "/workers") {
        Ok((200, body)) => serde_json::from_str(&body).map_err(|err| format!("{err}: {body}")),
        Ok((status, body)) => Err(format!("HTTP {status}: {body}")),
        Err(err) => Err(err.to_string()),
    }
}

/// One worker of a `/workers` answer.
fn worker<'a>(workers: &'a Value, name: &str) -> &'a Value {
    workers["workers"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["name"] == name))
        .unwrap_or_else(|| panic!("no worker {name} in {workers}"))
}

/// The value of the sample `series` (name and labels, exactly as printed) on `/metrics`.
fn sample(addr: &str, series: &str) -> f64 {
    let (status, body) = get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
}

/// A child process that is killed on drop unless it has already exited, so a failed assertion
/// leaves nothing running. With `group`, the child leads its own process group and the whole
/// group is killed: chromedriver's Chromium processes go with it.
struct Process {
    child: Child,
    group: bool,
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.group {
            // The group outlives its leader when the leader exits first: always signal it.
            Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status()
                .ok();
        }
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
        }
        self.child.wait().ok();
    }
}

impl Process {
    /// Panics with `what` if the process has exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().expect("poll child") {
            panic!("{what} exited early with {status} (its log is below)");
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts the quickstart with admin actions on (`token`) and an email to a blocked address in
/// every burst (so that dead jobs pile up) on a free loopback port and waits for `/workers`;
/// returns the process and its address.
fn start_quickstart(scratch: &Scratch, token: &str) -> (Process, String) {
    let addr = free_addr();
    let (stdout, stderr) = scratch.log("quickstart");
    let mut quickstart = Process {
        child: Command::new(example("quickstart"))
            .env("METRICS_ADDR", &addr)
            .env("WORKER_ADMIN_TOKEN", token)
            .env("QUICKSTART_SPAM", "1")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start the quickstart"),
        group: false,
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    while let Err(err) = workers_json(&addr) {
        quickstart.assert_running("the quickstart");
        assert!(Instant::now() < deadline, "no /workers on {addr}: {err}");
        std::thread::sleep(POLL);
    }
    (quickstart, addr)
}

/// Starts chromedriver on a free loopback port and waits until it is ready; returns the process
/// and its URL.
fn start_chromedriver(scratch: &Scratch, chromedriver: &Path) -> (Process, String) {
    let addr = free_addr();
    let port = addr.rsplit_once(':').expect("host:port").1;
    let (stdout, stderr) = scratch.log("chromedriver");
    let mut driver = Process {
        child: Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("start chromedriver"),
        group: true,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        driver.assert_running("chromedriver");
        match get(&addr, "/status") {
            Ok((200, body)) if body.contains("\"ready\":true") => break,
            answer => assert!(
                Instant::now() < deadline,
                "chromedriver on {addr} is not ready: {answer:?}"
            ),
        }
        std::thread::sleep(POLL);
    }
    (driver, format!("http://{addr}"))
}

/// Connects to chromedriver with a new headless Chromium session.
async fn open_browser(driver: &str, chromium: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1400,800",
                "--disable-dev-shm-usage",
            ],
        }),
    );
    ClientBuilder::native()
        .capabilities(capabilities)
        .connect(driver)
        .await
        .unwrap_or_else(|err| panic!("no Chromium session from chromedriver at {driver}: {err}"))
}

/// What the dashboard shows, read in one script so that a refresh cannot land half-way.
#[derive(Debug)]
struct Page {
    /// `#host-state[data-state]`.
    host: Option<String>,
    /// The text of `#error` when it is visible.
    error: Option<String>,
    /// The texts of `#summary` and `#refreshed`.
    summary: String,
    refreshed: String,
    admin_note_hidden: bool,
    /// `#action-status`: text and class.
    status: (String, String),
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    name: String,
    /// `tr[data-state]`.
    state: String,
    /// The text of `td.status span.state`.
    shown: Option<String>,
    /// `td.runs[data-total]`.
    total: Option<u64>,
    /// The ticks of `td.recent .strip`, by `data-result`.
    ticks: Vec<String>,
    /// The queue block of a queue worker's name cell, and its row of dead jobs.
    queue: Option<QueueBlock>,
}

#[derive(Debug)]
struct QueueBlock {
    /// `[data-queue-depth]`: the attribute, and the text of the element.
    depth: Option<u64>,
    depth_text: String,
    /// `svg.depth-chart`: present, and `data-samples`.
    chart: bool,
    samples: Option<u64>,
    /// The rows `tr[data-dead-job]` of `tr[data-dead-jobs-of=<worker>]`, newest first: the ids
    /// of those with a `button.requeue`.
    dead: Vec<u64>,
    /// Whether the row of dead jobs, when there is one, comes right after the worker's row.
    dead_row_follows: bool,
}

const READ_PAGE: &str = r"
const $ = (sel) => document.querySelector(sel);
const error = $('#error');
return {
  host: $('#host-state').dataset.state || null,
  error: error.hidden ? null : error.textContent,
  summary: $('#summary').textContent,
  refreshed: $('#refreshed').textContent,
  admin_note_hidden: $('#admin-note').hidden,
  status: [$('#action-status').textContent, $('#action-status').className],
  rows: [...document.querySelectorAll('#workers tbody tr[data-worker]')].map((tr) => {
    const shown = tr.querySelector('td.status span.state');
    const runs = tr.querySelector('td.runs[data-total]');
    return {
      name: tr.dataset.worker,
      state: tr.dataset.state,
      shown: shown ? shown.textContent : null,
      total: runs ? runs.dataset.total : null,
      ticks: [...tr.querySelectorAll('td.recent .strip span.tick[data-result]')]
        .map((t) => t.dataset.result),
      queue: queue(tr),
    };
  }),
};
function queue(tr) {
  const box = tr.querySelector('td.name .queue');
  if (!box) return null;
  const depth = box.querySelector('[data-queue-depth]');
  const chart = box.querySelector('svg.depth-chart');
  const dead = [...document.querySelectorAll('#workers tbody tr[data-dead-jobs-of]')]
    .find((row) => row.dataset.deadJobsOf === tr.dataset.worker);
  return {
    depth: depth ? depth.dataset.queueDepth : null,
    depth_text: depth ? depth.textContent : '',
    chart: !!chart && chart instanceof SVGSVGElement,
    samples: chart ? chart.dataset.samples || null : null,
    dead: dead ? [...dead.querySelectorAll('tr[data-dead-job]')]
      .filter((job) => job.querySelector('button.requeue'))
      .map((job) => job.dataset.deadJob) : [],
    dead_row_follows: !dead || tr.nextElementSibling === dead,
  };
}
";

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

async fn read_page(client: &Client) -> Page {
    let page = client
        .execute(READ_PAGE, Vec::new())
        .await
        .expect("read the dashboard");
    let rows = page["rows"].as_array().cloned().unwrap_or_default();
    Page {
        host: text(&page["host"]),
        error: text(&page["error"]),
        summary: text(&page["summary"]).unwrap_or_default(),
        refreshed: text(&page["refreshed"]).unwrap_or_default(),
        admin_note_hidden: page["admin_note_hidden"] == true,
        status: (
            text(&page["status"][0]).unwrap_or_default(),
            text(&page["status"][1]).unwrap_or_default(),
        ),
        rows: rows
            .iter()
            .map(|row| Row {
                name: text(&row["name"]).unwrap_or_default(),
                state: text(&row["state"]).unwrap_or_default(),
                shown: text(&row["shown"]),
                total: row["total"].as_str().and_then(|total| total.parse().ok()),
                ticks: row["ticks"]
                    .as_array()
                    .map(|ticks| ticks.iter().filter_map(text).collect())
                    .unwrap_or_default(),
                queue: queue_block(&row["queue"]),
            })
            .collect(),
    }
}

fn number(value: &Value) -> Option<u64> {
    value.as_str().and_then(|n| n.parse().ok())
}

fn queue_block(queue: &Value) -> Option<QueueBlock> {
    queue.is_object().then(|| QueueBlock {
        depth: number(&queue["depth"]),
        depth_text: text(&queue["depth_text"]).unwrap_or_default(),
        chart: queue["chart"] == true,
        samples: number(&queue["samples"]),
        dead: queue["dead"]
            .as_array()
            .map(|ids| ids.iter().filter_map(number).collect())
            .unwrap_or_default(),
        dead_row_follows: queue["dead_row_follows"] == true,
    })
}

impl Page {
    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.name == name)
    }
}

/// Polls `probe` until it gives a value, or fails after [`WAIT`] with what it saw last.
async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The "Run now" button of `name`'s row.
async fn run_button(client: &Client, name: &str) -> fantoccini::elements::Element {
    let css =
        format!("#workers tbody tr[data-worker=\"{name}\"] td.actions button[data-action=run]");
    client
        .find(Locator::Css(&css))
        .await
        .unwrap_or_else(|err| panic!("no Run now button for {name}: {err}"))
}

/// Replaces the content of `#token` by typing `token`.
async fn type_token(client: &Client, token: &str) {
    let input = client
        .find(Locator::Css("#token"))
        .await
        .expect("a #token input");
    input.clear().await.expect("clear #token");
    input.send_keys(token).await.expect("type into #token");
    let typed = input.prop("value").await.expect("#token value");
    assert_eq!(
        typed.as_deref(),
        Some(token),
        "the token input holds what was typed"
    );
}

/// Every worker has a row showing a valid state, and the host is running.
async fn wait_for_rows(client: &Client) -> Page {
    let workers = all_workers();
    let summary = format!("{} workers · ", workers.len());
    wait_for("every worker's row with a valid state", async || {
        let page = read_page(client).await;
        let complete = page.host.as_deref() == Some("running")
            && page.error.is_none()
            && page.summary.starts_with(&summary)
            && page.refreshed.starts_with("Updated ")
            && workers.iter().all(|name| {
                page.row(name).is_some_and(|row| {
                    row.shown.as_deref() == Some(row.state.as_str())
                        && STATES.contains(&row.state.as_str())
                        && row.total.is_some()
                })
            });
        if complete {
            Ok(page)
        } else {
            Err(format!("{page:#?}"))
        }
    })
    .await
}

/// Waits until the next scheduled run of [`WORKER`] is at least 4 s away, so that no
/// scheduled run can be mistaken for a manual one (or hide it) during the clicks that follow.
async fn wait_for_quiet_schedule(addr: &str) {
    wait_for("4 s before the next scheduled digest", async || {
        let workers = workers_json(addr)?;
        let now = workers["now"]
            .as_f64()
            .ok_or_else(|| "no `now`".to_owned())?;
        let digest = worker(&workers, WORKER);
        match digest["next_run_at"].as_f64() {
            Some(next) if next - now >= 4.0 && digest["active_runs"] == 0 => Ok(()),
            _ => Err(format!("{digest}")),
        }
    })
    .await;
}

/// A wrong token: the page shows the refusal, and no run was requested.
async fn wrong_token_is_refused(client: &Client, addr: &str) {
    let run = "{worker=\"digest\",action=\"run\"}";
    let unauthorized = "worker_admin_refused_total{reason=\"unauthorized\"}";
    let refused_before = sample(addr, unauthorized);
    type_token(client, "not-the-token").await;
    run_button(client, WORKER)
        .await
        .click()
        .await
        .expect("click Run now");
    let status = wait_for("the refusal in #action-status", async || {
        let page = read_page(client).await;
        let (text, class) = &page.status;
        if class == "err" && text.starts_with("run digest failed") {
            Ok(text.clone())
        } else {
            Err(format!("{:?}", page.status))
        }
    })
    .await;
    assert!(
        status.contains("Authorization: Bearer"),
        "the refusal says what is missing: {status}"
    );
    assert!(
        (sample(addr, unauthorized) - refused_before - 1.0).abs() < f64::EPSILON,
        "the server counted one unauthorized request"
    );
    assert!(
        sample(addr, &format!("worker_admin_actions_total{run}")) < 0.5,
        "no run was requested with a wrong token"
    );
    let workers = workers_json(addr).expect("/workers");
    let last_run = &worker(&workers, WORKER)["last_run"];
    assert_ne!(last_run["trigger"], "manual", "no manual run: {last_run}");
}

/// The right token: "Run now" is accepted, and the page shows one more run of the worker.
async fn run_now_starts_a_manual_run(client: &Client, addr: &str, token: &str) {
    type_token(client, token).await;
    let before = read_page(client)
        .await
        .row(WORKER)
        .and_then(|row| row.total)
        .expect("digest's total runs");
    run_button(client, WORKER)
        .await
        .click()
        .await
        .expect("click Run now");
    // The answer names the run that started: "run 17 started for digest".
    let suffix = format!(" started for {WORKER}");
    let run_id: u64 = wait_for("the acknowledgement in #action-status", async || {
        let page = read_page(client).await;
        let (text, tone) = &page.status;
        match text
            .strip_prefix("run ")
            .and_then(|rest| rest.strip_suffix(&suffix))
            .and_then(|id| id.parse().ok())
        {
            Some(id) if tone == "ok" => Ok(id),
            _ => Err(format!("{:?}", page.status)),
        }
    })
    .await;
    // Over HTTP, before a scheduled run can replace it: the next one was at least 4 s away
    // before the first click.
    let last_run = wait_for("a manual last run of digest on /workers", async || {
        let workers = workers_json(addr)?;
        let last_run = worker(&workers, WORKER)["last_run"].clone();
        if last_run["trigger"] == "manual" {
            Ok(last_run)
        } else {
            Err(last_run.to_string())
        }
    })
    .await;
    assert_eq!(last_run["result"], "success", "{last_run}");
    assert_eq!(last_run["run_id"], run_id, "the run the answer named");
    let run = "worker_admin_actions_total{worker=\"digest\",action=\"run\"}";
    assert!(
        (sample(addr, run) - 1.0).abs() < f64::EPSILON,
        "one run requested"
    );
    // The page refreshes by itself (every 2 s); nothing reloads it.
    let after = wait_for("one more digest run on the page", async || {
        let page = read_page(client).await;
        match page.row(WORKER).and_then(|row| row.total) {
            Some(total) if total > before => Ok(total),
            total => Err(format!("total {total:?}, {before} before the click")),
        }
    })
    .await;
    eprintln!("digest's runs on the page: {before} before Run now, {after} after");
}

/// The queue worker's row shows its queue (the depth and a depth chart with samples), and the
/// row right under it its dead jobs (the quickstart queues an email to a blocked address every
/// 2 s); a scheduled worker's row has no queue block. Returns the dead jobs' ids, newest first.
async fn queue_is_shown(client: &Client) -> Vec<u64> {
    wait_for(
        "send_email's depth, depth chart and dead jobs",
        async || {
            let page = read_page(client).await;
            if let Some(row) = page
                .rows
                .iter()
                .find(|row| row.queue.is_some() && row.name != CONSUMER)
            {
                panic!("a scheduled worker's row shows a queue: {row:#?}");
            }
            let Some(queue) = page.row(CONSUMER).and_then(|row| row.queue.as_ref()) else {
                return Err(format!("{page:#?}"));
            };
            let depth_shown = queue
                .depth
                .is_some_and(|depth| queue.depth_text.contains(&format!("depth {depth}")));
            if depth_shown
                && queue.dead_row_follows
                && queue.chart
                && queue.samples.unwrap_or(0) >= 1
                && !queue.dead.is_empty()
            {
                Ok(queue.dead.clone())
            } else {
                Err(format!("{queue:#?}"))
            }
        },
    )
    .await
}

/// The "Requeue" button of a dead job: the page shows the new job's id, and `/workers` no longer
/// lists the dead job, counts one more job enqueued, and soon lists the new job among the dead
/// (its address is still blocked).
async fn requeue_a_dead_job(client: &Client, addr: &str, dead: &[u64]) {
    let job = dead[0];
    let queue = |workers: &Value| worker(workers, CONSUMER)["queue"].clone();
    let listed = |queue: &Value, id: u64| {
        queue["dead_jobs"]
            .as_array()
            .is_some_and(|dead| dead.iter().any(|d| d["id"] == id))
    };
    let before = queue(&workers_json(addr).expect("/workers"));
    assert!(listed(&before, job), "dead job {job} on /workers: {before}");
    let enqueued = before["enqueued"].as_u64().expect("enqueued");
    let css = format!(
        "#workers tbody tr[data-dead-jobs-of=\"{CONSUMER}\"] tr[data-dead-job=\"{job}\"] button.requeue"
    );
    client
        .find(Locator::Css(&css))
        .await
        .unwrap_or_else(|err| panic!("no Requeue button for dead job {job}: {err}"))
        .click()
        .await
        .expect("click Requeue");
    // "job 7 requeued as job 12 for send_email"
    let prefix = format!("job {job} requeued as job ");
    let suffix = format!(" for {CONSUMER}");
    let new_job: u64 = wait_for("the requeue answer in #action-status", async || {
        let page = read_page(client).await;
        let (text, tone) = &page.status;
        match text
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&suffix))
            .and_then(|id| id.parse().ok())
        {
            Some(id) if tone == "ok" => Ok(id),
            _ => Err(format!("{:?}", page.status)),
        }
    })
    .await;
    assert_ne!(new_job, job, "the requeued job is a new job");
    let after = queue(&workers_json(addr).expect("/workers"));
    assert!(
        !listed(&after, job),
        "dead job {job} is still listed after its requeue: {after}"
    );
    let grown = after["enqueued"].as_u64().expect("enqueued");
    assert!(
        grown > enqueued,
        "enqueued: {enqueued} before, {grown} after"
    );
    let admin = "worker_admin_actions_total{worker=\"send_email\",action=\"requeue\"}";
    assert!(
        (sample(addr, admin) - 1.0).abs() < f64::EPSILON,
        "one requeue counted"
    );
    // The page drops the dead job by itself, on its next refresh.
    wait_for("the requeued dead job gone from the page", async || {
        let page = read_page(client).await;
        match page.row(CONSUMER).and_then(|row| row.queue.as_ref()) {
            Some(queue) if !queue.dead.contains(&job) => Ok(()),
            queue => Err(format!("{queue:#?}")),
        }
    })
    .await;
    // The new job runs, and goes dead in its turn: the address is still blocked.
    wait_for("the requeued job dead again on /workers", async || {
        let queue = queue(&workers_json(addr)?);
        if listed(&queue, new_job) {
            Ok(())
        } else {
            Err(queue.to_string())
        }
    })
    .await;
    eprintln!("dead job {job} requeued as job {new_job}; enqueued {enqueued} -> {grown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_every_worker_and_runs_one_on_demand() {
    let _turn = crate::support::module_turn(module_path!());
    let chromium = installed("chromium");
    let chromedriver = installed("chromedriver");
    let started = Instant::now();
    let token = format!(
        "t{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos()
            ^ u128::from(std::process::id())
    );

    // Declared first, dropped last: the processes are gone before their logs are printed.
    let scratch = Scratch::new("browser", &["quickstart", "chromedriver"]);
    let (quickstart, addr) = start_quickstart(&scratch, &token);
    let (driver, driver_url) = start_chromedriver(&scratch, &chromedriver);
    let client = open_browser(&driver_url, &chromium).await;
    eprintln!("browser ready after {:.1?}", started.elapsed());

    client
        .goto(&format!("http://{addr}/"))
        .await
        .expect("load the dashboard");
    assert_eq!(client.title().await.expect("title"), "Workers");
    let page = wait_for_rows(&client).await;
    assert!(page.admin_note_hidden, "admin actions are on: {page:#?}");
    let names: Vec<_> = page.rows.iter().map(|row| row.name.as_str()).collect();
    assert_eq!(names, all_workers(), "rows in registration order");
    eprintln!("every row shown after {:.1?}", started.elapsed());

    wait_for_quiet_schedule(&addr).await;
    wrong_token_is_refused(&client, &addr).await;
    run_now_starts_a_manual_run(&client, &addr, &token).await;
    eprintln!("manual run shown after {:.1?}", started.elapsed());

    let dead = queue_is_shown(&client).await;
    eprintln!(
        "queue shown with {} dead jobs after {:.1?}",
        dead.len(),
        started.elapsed()
    );
    requeue_a_dead_job(&client, &addr, &dead).await;
    eprintln!("requeue shown after {:.1?}", started.elapsed());

    // A screenshot once every strip shows a few runs (digest: the manual one and its cron's).
    let page = wait_for("two runs in every worker's strip", async || {
        let page = read_page(&client).await;
        let full = page.rows.len() == all_workers().len()
            && page.rows.iter().all(|row| row.ticks.len() >= 2);
        if full {
            Ok(page)
        } else {
            Err(format!("{page:#?}"))
        }
    })
    .await;
    assert!(page.error.is_none(), "{page:#?}");
    let png = client.screenshot().await.expect("screenshot");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    std::fs::create_dir_all(root.join("target")).expect("create target/");
    let path = root.join("target").join("dashboard.png");
    std::fs::write(&path, &png).expect("write the screenshot");
    eprintln!(
        "screenshot ({} bytes) in {} after {:.1?}",
        png.len(),
        path.display(),
        started.elapsed()
    );

    client.close().await.expect("close the browser session");
    drop(driver);
    // The quickstart's shutdown timeout is 10 s: an exit code of 0 means nothing overran it.
    let status = quickstart.terminate();
    assert!(status.success(), "the quickstart exited with {status}");
    eprintln!("done after {:.1?}", started.elapsed());
}

/// An order of `examples/replicas.rs`.
#[derive(serde::Serialize)]
struct Order {
    id: i64,
}

/// The durable queue worker of `examples/replicas.rs`.
const DURABLE: &str = "process_order";

/// `process_order`'s queue on `/workers`.
fn durable_queue(addr: &str) -> Result<Value, String> {
    Ok(worker(&workers_json(addr)?, DURABLE)["queue"].clone())
}

/// Whether `queue` lists `id` among its dead (discarded) jobs.
fn lists(queue: &Value, id: u64) -> bool {
    queue["dead_jobs"]
        .as_array()
        .is_some_and(|dead| dead.iter().any(|d| d["id"] == id))
}

/// Clicks `css` on the page, then waits for `#action-status` to say something starting with
/// `expected`, in the `ok` tone; returns the text.
async fn click_and_read(client: &Client, css: &str, expected: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no {css}: {err}"))
        .click()
        .await
        .expect("click");
    wait_for(&format!("\"{expected}\" in #action-status"), async || {
        let (text, tone) = read_page(client).await.status;
        if tone == "ok" && text.starts_with(expected) {
            Ok(text)
        } else {
            Err(format!("{text:?} ({tone})"))
        }
    })
    .await
}

/// Types `id` into the job-id input of the durable queue's block.
async fn type_job_id(client: &Client, id: i64) {
    let css = format!("#workers tbody tr[data-worker=\"{DURABLE}\"] .queue input.job-id");
    let input = client
        .find(Locator::Css(&css))
        .await
        .expect("a job-id input");
    input.clear().await.expect("clear");
    input.send_keys(&id.to_string()).await.expect("type the id");
}

/// A durable queue on the dashboard of one replica of `examples/replicas.rs`: its jobs by
/// state, its discarded jobs with their errors, and the token-guarded Retry, Cancel and Discard
/// buttons, which change the jobs in the database; and its singleton's lease.
#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario, read top to bottom: the page, then each action and its effects"
)]
async fn the_dashboard_shows_a_durable_queue_and_retries_cancels_and_discards_its_jobs() {
    let _turn = crate::support::module_turn(module_path!());
    let chromium = installed("chromium");
    let chromedriver = installed("chromedriver");
    let url = std::env::var("WORKER_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("WORKER_TEST_DATABASE_URL is not set: run scripts/test, which starts PostgreSQL")
    });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    let schema = format!("dashboard_{}_{nanos}", std::process::id());
    let pool = sqlx::PgPool::connect(&url).await.expect("connects");
    let pg = worker_postgres::Postgres::new(pool)
        .schema(&schema)
        .expect("valid");
    pg.migrate().await.expect("migrates");
    sqlx::raw_sql(sqlx::AssertSqlSafe(replicas_tables(&schema)))
        .execute(pg.pool())
        .await
        .expect("creates the example's tables");
    let orders = pg.queue::<Order>("orders").expect("valid");
    // An order that does not exist: discarded at its first attempt.
    let missing = orders
        .enqueue(pg.pool(), &Order { id: -7 })
        .await
        .expect("enqueues")
        .id;
    // Two orders for later, to cancel and to discard.
    let later = || worker_postgres::Opts::new().run_in(Duration::from_hours(1));
    let to_cancel = orders
        .enqueue_with(pg.pool(), &Order { id: 1 }, later())
        .await
        .expect("enqueues")
        .id;
    let to_discard = orders
        .enqueue_with(pg.pool(), &Order { id: 2 }, later())
        .await
        .expect("enqueues")
        .id;
    let token = format!("t{nanos:x}");

    let scratch = Scratch::new("browser-durable", &["replica", "chromedriver"]);
    let addr = free_addr();
    let (stdout, stderr) = scratch.log("replica");
    let replica = Process {
        child: Command::new(example("replicas"))
            .env("DATABASE_URL", &url)
            .env("WORKER_SCHEMA", &schema)
            .env("REPLICA", "b1")
            .env("METRICS_ADDR", &addr)
            .env("WORKER_ADMIN_TOKEN", &token)
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .env_remove("REPLICAS_ENQUEUE")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start the replica"),
        group: false,
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    while let Err(err) = workers_json(&addr) {
        assert!(Instant::now() < deadline, "no /workers on {addr}: {err}");
        std::thread::sleep(POLL);
    }
    let (driver, driver_url) = start_chromedriver(&scratch, &chromedriver);
    let client = open_browser(&driver_url, &chromium).await;
    client
        .goto(&format!("http://{addr}/"))
        .await
        .expect("load the dashboard");

    // The queue's jobs by state, and the discarded job with its error and a Retry button.
    let missing = u64::try_from(missing).expect("positive");
    let dead_css = |id: u64| {
        format!(
            "#workers tbody tr[data-dead-jobs-of=\"{DURABLE}\"] tr[data-dead-job=\"{id}\"] button.retry"
        )
    };
    let count_css = |state: &str| {
        format!(
            "#workers tbody tr[data-worker=\"{DURABLE}\"] .queue [data-state-count=\"{state}\"]"
        )
    };
    let count = async |state: &str| -> Option<u64> {
        let element = client.find(Locator::Css(&count_css(state))).await.ok()?;
        element.attr("data-count").await.ok()??.parse().ok()
    };
    wait_for(
        "the scheduled jobs and the discarded one on the page",
        async || {
            let scheduled = count("scheduled").await;
            let discarded = client.find(Locator::Css(&dead_css(missing))).await.is_ok();
            if scheduled == Some(2) && discarded {
                Ok(())
            } else {
                Err(format!(
                    "scheduled {scheduled:?}, discarded job shown: {discarded}"
                ))
            }
        },
    )
    .await;
    // The replica is the roll-up's only replica: it holds its lease, and the page says so.
    wait_for("the roll-up's lease on the page", async || {
        let css =
            "#workers tbody tr[data-worker=\"rollup\"] td.status .lease[data-lease-held=\"true\"]";
        match client.find(Locator::Css(css)).await {
            Ok(lease) => {
                let text = lease.text().await.map_err(|err| err.to_string())?;
                if text.starts_with("holds the lease (fence ") {
                    Ok(())
                } else {
                    Err(text)
                }
            }
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
    let queue = durable_queue(&addr).expect("/workers");
    let error = queue["dead_jobs"]
        .as_array()
        .and_then(|dead| dead.iter().find(|d| d["id"] == missing))
        .map(|d| d["error"].clone());
    assert_eq!(
        error,
        Some(json!("order -7 does not exist")),
        "the discarded job's error on /workers: {queue}"
    );

    type_token(&client, &token).await;
    // Retry: a new job, which is discarded in its turn (the order still does not exist).
    let text = click_and_read(
        &client,
        &dead_css(missing),
        &format!("job {missing} retried as job "),
    )
    .await;
    let retried: u64 = text
        .rsplit_once(" as job ")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or_else(|| panic!("the new job's id in {text:?}"));
    assert_ne!(retried, missing);
    assert!(
        !lists(&durable_queue(&addr).expect("/workers"), missing),
        "the retried job left the discarded list at once"
    );
    wait_for("the retried job discarded in its turn", async || {
        let queue = durable_queue(&addr)?;
        if lists(&queue, retried) {
            Ok(())
        } else {
            Err(queue.to_string())
        }
    })
    .await;

    // Cancel and discard waiting jobs by id.
    let queue_css = format!("#workers tbody tr[data-worker=\"{DURABLE}\"] .queue");
    type_job_id(&client, to_cancel).await;
    click_and_read(
        &client,
        &format!("{queue_css} button[data-action=cancel]"),
        &format!("job {to_cancel} cancelled for {DURABLE}"),
    )
    .await;
    type_job_id(&client, to_discard).await;
    click_and_read(
        &client,
        &format!("{queue_css} button[data-action=discard]"),
        &format!("job {to_discard} discarded for {DURABLE}"),
    )
    .await;
    let discarded = u64::try_from(to_discard).expect("positive");
    wait_for(
        "the counts and the admin's discard on the page",
        async || {
            let (cancelled, scheduled) = (count("cancelled").await, count("scheduled").await);
            let shown = client
                .find(Locator::Css(&dead_css(discarded)))
                .await
                .is_ok();
            if cancelled == Some(1) && scheduled.is_none() && shown {
                Ok(())
            } else {
                Err(format!(
                    "cancelled {cancelled:?}, scheduled {scheduled:?}, shown {shown}"
                ))
            }
        },
    )
    .await;
    let queue = durable_queue(&addr).expect("/workers");
    let by_admin = queue["dead_jobs"]
        .as_array()
        .and_then(|dead| dead.iter().find(|d| d["id"] == discarded))
        .map(|d| d["error"].clone());
    assert_eq!(by_admin, Some(json!("discarded by an admin")), "{queue}");
    let state = |id| {
        let pg = pg.clone();
        async move { pg.job(id).await.expect("reads").expect("kept").state }
    };
    assert_eq!(state(to_cancel).await, worker_postgres::JobState::Cancelled);
    assert_eq!(
        state(to_discard).await,
        worker_postgres::JobState::Discarded
    );
    // A job action on a job of no such id is a 404, shown on the page as a failure.
    type_job_id(&client, 999_999_999).await;
    client
        .find(Locator::Css(&format!(
            "{queue_css} button[data-action=cancel]"
        )))
        .await
        .expect("the Cancel button")
        .click()
        .await
        .expect("click");
    wait_for("the refusal of an unknown job", async || {
        let (text, tone) = read_page(&client).await.status;
        if tone == "err" && text.contains("has no such job") {
            Ok(())
        } else {
            Err(format!("{text:?} ({tone})"))
        }
    })
    .await;
    for action in ["retry", "cancel", "discard"] {
        let series =
            format!("worker_admin_actions_total{{worker=\"{DURABLE}\",action=\"{action}\"}}");
        assert!(
            (sample(&addr, &series) - 1.0).abs() < f64::EPSILON,
            "one {action} counted"
        );
    }

    client.close().await.expect("close the browser session");
    drop(driver);
    let status = replica.terminate();
    assert!(status.success(), "the replica exited with {status}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(pg.pool())
        .await
        .expect("drops");
}
