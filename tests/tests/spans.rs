//! Tracing: one `worker.run` span per attempt, with the fields `worker`, `run_id`, `attempt`,
//! `trigger`, `result` and, for a queue worker's job, `job_id`, and the body's own events
//! inside it. Checked with a capturing
//! subscriber layer.
//!
//! A test binary of its own, its tests one at a time ([`SERIAL`]): each layer is its thread's
//! default subscriber only, but whether a callsite is enabled is cached process-wide, from the
//! subscribers alive when it is computed, so two tests with different filters at the same
//! moment would see each other's verdicts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use worker_core::testing::TestHost;
use worker_core::{BoxError, Ctx, Host, Job, Outcome, ScopedMut, worker};

type Fields = BTreeMap<String, String>;

/// Held by each test for its whole run: see the module's docs.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A span as the layer saw it: its name and every field recorded on it.
#[derive(Debug, Clone)]
struct CapturedSpan {
    name: String,
    fields: Fields,
}

#[derive(Debug, Default)]
struct Captured {
    spans: Vec<CapturedSpan>,
    /// Open spans: id to index in `spans` (ids are reused once a span closes).
    open: HashMap<Id, usize>,
    /// Events: their message and the index of the span they happened in.
    events: Vec<(String, Option<usize>)>,
}

/// A layer that records span names and fields, and events with their span.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

impl Capture {
    fn runs(&self) -> Vec<Fields> {
        let captured = self.0.lock().unwrap();
        captured
            .spans
            .iter()
            .filter(|s| s.name == "worker.run")
            .map(|s| s.fields.clone())
            .collect()
    }

    /// The fields of the span `message` was logged in.
    fn span_of(&self, message: &str) -> Vec<Option<Fields>> {
        let captured = self.0.lock().unwrap();
        captured
            .events
            .iter()
            .filter(|(m, _)| m == message)
            .map(|(_, span)| span.map(|i| captured.spans[i].fields.clone()))
            .collect()
    }
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let mut captured = self.0.lock().unwrap();
        captured.spans.push(CapturedSpan {
            name: attrs.metadata().name().to_owned(),
            fields,
        });
        let index = captured.spans.len() - 1;
        captured.open.insert(id.clone(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut captured = self.0.lock().unwrap();
        if let Some(&index) = captured.open.get(id) {
            values.record(&mut Visitor(&mut captured.spans[index].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let span = ctx.event_span(event).map(|span| span.id());
        let mut captured = self.0.lock().unwrap();
        let index = span.and_then(|id| captured.open.get(&id).copied());
        captured.events.push((message, index));
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        self.0.lock().unwrap().open.remove(&id);
    }
}

/// Fails its first two attempts, then succeeds.
#[worker(every = "1h", retry = 3, backoff = "1s")]
async fn traced(ctx: Ctx) -> Result<(), BoxError> {
    tracing::info!("inside the body");
    if ctx.attempt() < 3 {
        return Err("not yet".into());
    }
    Ok(())
}

#[worker(every = "1h")]
async fn traced_panic() {
    panic!("traced panic");
}

/// A queue worker whose job fails its first attempt.
#[worker(queue = "traced", retry = 1, backoff = "1s")]
async fn traced_job(job: Job<u32>) -> Result<(), BoxError> {
    tracing::info!(payload = *job, "inside the job");
    if job.attempt() == 1 {
        return Err("not yet".into());
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn one_worker_run_span_per_attempt_with_its_fields() {
    let _serial = SERIAL.lock().await;
    let capture = Capture::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let host = TestHost::start(
        Host::builder()
            .worker(traced)
            .worker(traced_panic)
            .worker(traced_job),
    )
    .unwrap();
    host.queue::<u32>("traced").send(7).await.unwrap();
    // The first run of each, and the retries of `traced`; the next runs are an hour away.
    host.advance(Duration::from_mins(1)).await;
    let runs = host.runs("traced");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].attempts, 3);
    let run_id = runs[0].run_id.to_string();
    let job_run = host.runs("traced_job")[0].run_id.to_string();
    host.stop().await.unwrap();
    let field = |fields: &Fields, name: &str| fields.get(name).cloned().unwrap_or_default();
    let spans = capture.runs();
    let attempts_of_traced: Vec<[String; 5]> = spans
        .iter()
        .filter(|f| field(f, "worker") == "traced")
        .map(|f| ["worker", "run_id", "attempt", "trigger", "result"].map(|name| field(f, name)))
        .collect();
    let expected = |attempt: &str, result: &str| {
        [
            "traced".to_owned(),
            run_id.clone(),
            attempt.to_owned(),
            "schedule".to_owned(),
            result.to_owned(),
        ]
    };
    assert_eq!(
        attempts_of_traced,
        [
            expected("1", "failure"),
            expected("2", "failure"),
            expected("3", "success"),
        ]
    );

    let panicked: Vec<&Fields> = spans
        .iter()
        .filter(|f| field(f, "worker") == "traced_panic")
        .collect();
    assert_eq!(panicked.len(), 1);
    assert_eq!(field(panicked[0], "result"), "panic");
    assert_eq!(field(panicked[0], "attempt"), "1");
    assert_ne!(field(panicked[0], "run_id"), run_id, "run ids are unique");

    // The body's own events are inside the attempt's span.
    let inside = capture.span_of("inside the body");
    let attempts: Vec<String> = inside
        .iter()
        .map(|span| field(span.as_ref().expect("an event outside any span"), "attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);

    // A queue job's attempts: one span each, with the job's id, sharing the job's run id.
    let job_attempts: Vec<[String; 6]> = spans
        .iter()
        .filter(|f| field(f, "worker") == "traced_job")
        .map(|f| {
            ["worker", "run_id", "attempt", "trigger", "job_id", "result"]
                .map(|name| field(f, name))
        })
        .collect();
    let job = |attempt: &str, result: &str| {
        [
            "traced_job".to_owned(),
            job_run.clone(),
            attempt.to_owned(),
            "queue".to_owned(),
            "1".to_owned(),
            result.to_owned(),
        ]
    };
    assert_eq!(job_attempts, [job("1", "failure"), job("2", "success")]);
    let inside = capture.span_of("inside the job");
    assert!(
        inside
            .iter()
            .all(|span| span.as_ref().is_some_and(|f| field(f, "job_id") == "1")),
        "{inside:?}"
    );
}

/// At the default `span_level` (debug): fails its first attempt, then succeeds.
#[worker(every = "1h", retry = 1, backoff = "1s")]
async fn quiet_span(ctx: Ctx) -> Result<(), BoxError> {
    tracing::info!("inside the quiet body");
    if ctx.attempt() == 1 {
        return Err("first attempt".into());
    }
    Ok(())
}

/// `span_level = info`: recorded by a subscriber at INFO.
#[worker(every = "1h", span_level = info)]
async fn loud_span() {
    tracing::info!("inside the loud body");
}

/// At the default `span_level`, panics on its one run.
#[worker(every = "1h")]
async fn quiet_panic() {
    panic!("quiet panic");
}

/// Under a subscriber filtered at INFO, as services run: a worker at the default `span_level`
/// has no `worker.run` span (its body's lines carry none), yet its failure and panic lines are
/// logged in a `worker.run` span with the run's fields; at `span_level = info` every attempt has
/// its span, as at any level, and the span's target lets a filter enable them alone.
#[tokio::test(start_paused = true)]
async fn at_info_only_span_level_info_records_runs_and_failures_keep_the_run_fields() {
    let _serial = SERIAL.lock().await;
    let capture = Capture::default();
    let guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(capture.clone().with_filter(LevelFilter::INFO)),
    );
    let host = TestHost::start(
        Host::builder()
            .worker(quiet_span)
            .worker(loud_span)
            .worker(quiet_panic),
    )
    .unwrap();
    host.advance(Duration::from_mins(1)).await;
    let quiet_run = host.runs("quiet_span")[0].run_id.to_string();
    let panic_run = host.runs("quiet_panic")[0].run_id.to_string();
    assert_eq!(host.runs("quiet_span")[0].attempts, 2);
    host.stop().await.unwrap();
    let field = |fields: &Fields, name: &str| fields.get(name).cloned().unwrap_or_default();
    let of = |worker: &str| -> Vec<[String; 5]> {
        capture
            .runs()
            .iter()
            .filter(|f| field(f, "worker") == worker)
            .map(|f| ["run_id", "attempt", "trigger", "result", "job_id"].map(|n| field(f, n)))
            .collect()
    };
    let line = |run: &str, attempt: &str, result: &str| {
        [run, attempt, "schedule", result, ""].map(str::to_owned)
    };
    // The failed attempt's line only: the successful retry has no span.
    assert_eq!(of("quiet_span"), [line(&quiet_run, "1", "failure")]);
    assert_eq!(
        capture.span_of("attempt failed; retrying"),
        [Some(
            capture
                .runs()
                .into_iter()
                .find(|f| field(f, "worker") == "quiet_span")
                .unwrap()
        )]
    );
    assert_eq!(capture.span_of("inside the quiet body"), [None, None]);
    assert_eq!(of("quiet_panic"), [line(&panic_run, "1", "panic")]);
    assert_eq!(capture.span_of("worker panicked").len(), 1);
    assert!(capture.span_of("worker panicked")[0].is_some());
    // `span_level = info`: its one run's span, with the body's line inside.
    let loud = of("loud_span");
    assert_eq!(loud.len(), 1, "{loud:?}");
    assert_eq!(loud[0][3], "success");
    let inside = capture.span_of("inside the loud body");
    assert!(
        matches!(&inside[..], [Some(f)] if field(f, "worker") == "loud_span"),
        "{inside:?}"
    );
    drop(guard);

    // The spans' target enables them alone: `worker_core::span=debug` over INFO.
    let capture = Capture::default();
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("worker_core::span", LevelFilter::DEBUG);
    let guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(capture.clone().with_filter(filter)),
    );
    let host = TestHost::start(Host::builder().worker(quiet_span)).unwrap();
    host.advance(Duration::from_mins(1)).await;
    host.stop().await.unwrap();
    let results: Vec<String> = capture.runs().iter().map(|f| field(f, "result")).collect();
    assert_eq!(results, ["failure", "success"]);
    assert_eq!(
        capture
            .span_of("inside the quiet body")
            .iter()
            .flatten()
            .count(),
        2
    );
    assert!(
        capture.span_of("run succeeded").is_empty(),
        "no other DEBUG line"
    );
    drop(guard);

    // The configuration sets it too.
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(capture.clone().with_filter(LevelFilter::INFO)),
    );
    let overridden = Host::builder()
        .worker(quiet_span)
        .config_env([("WORKER__QUIET_SPAN__SPAN_LEVEL", "info")]);
    let host = TestHost::start(overridden).unwrap();
    host.advance(Duration::from_mins(1)).await;
    host.stop().await.unwrap();
    let results: Vec<String> = capture.runs().iter().map(|f| field(f, "result")).collect();
    assert_eq!(results, ["failure", "success"]);
}

/// A resource whose finish step fails after a failed attempt.
#[derive(Debug)]
struct Handle;

/// Fails, so its resource's finish step is told so, and fails too.
#[worker(every = "1h")]
async fn fails_then_finish_fails(_handle: ScopedMut<Handle>) -> Result<(), BoxError> {
    Err("the body failed".into())
}

/// Moves its resource into a task, which holds it past the attempt.
#[worker(every = "1h")]
async fn leaks_its_handle(handle: ScopedMut<Handle>) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(handle);
    });
}

/// The finish step's warnings, like the attempt's failure line, are logged in a `worker.run`
/// span with the run's fields under an INFO subscriber, where the attempt's own span at the
/// default `span_level` is not recorded.
#[tokio::test(start_paused = true)]
async fn finish_step_warnings_keep_the_run_fields_at_info() {
    let _serial = SERIAL.lock().await;
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(capture.clone().with_filter(LevelFilter::INFO)),
    );
    let builder = Host::builder()
        .scoped_mut(
            |_: Ctx| async { Ok::<_, BoxError>(Handle) },
            |_: Handle, outcome: Outcome| async move {
                match outcome {
                    Outcome::Success => Ok(()),
                    _ => Err::<(), BoxError>("the rollback failed".into()),
                }
            },
        )
        .worker(fails_then_finish_fails)
        .worker(leaks_its_handle);
    let host = TestHost::start(builder).unwrap();
    host.advance(Duration::from_mins(1)).await;
    let failed_run = host.runs("fails_then_finish_fails")[0].run_id.to_string();
    let leaked_run = host.runs("leaks_its_handle")[0].run_id.to_string();
    host.stop().await.unwrap();
    let field = |fields: &Option<Fields>, name: &str| {
        fields
            .as_ref()
            .and_then(|f| f.get(name).cloned())
            .unwrap_or_default()
    };
    let fields = |message: &str| -> Vec<[String; 4]> {
        capture
            .span_of(message)
            .iter()
            .map(|f| ["worker", "run_id", "attempt", "result"].map(|n| field(f, n)))
            .collect()
    };
    let expected =
        |worker: &str, run: &str, result: &str| [worker, run, "1", result].map(str::to_owned);
    assert_eq!(
        fields("finishing a resource after the attempt failed"),
        [expected("fails_then_finish_fails", &failed_run, "failure")]
    );
    assert_eq!(
        fields(
            "a `ScopedMut` outlived its attempt (moved into a task?): it is not finished, and \
             its value is dropped with the handle"
        ),
        [expected("leaks_its_handle", &leaked_run, "success")]
    );
}

/// Fails its first attempt; each attempt fetches in a span of its own.
#[worker(every = "1h", retry = 1, backoff = "1s")]
async fn exported(ctx: Ctx) -> Result<(), BoxError> {
    let fetched = async { tracing::info!("fetching") };
    tracing::Instrument::instrument(fetched, tracing::info_span!("fetch_orders")).await;
    if ctx.attempt() == 1 {
        return Err("not yet".into());
    }
    Ok(())
}

/// The spans reach OpenTelemetry through `tracing-opentelemetry`, wired as the README shows:
/// one `worker.run` span per attempt with the run's fields as attributes, and the body's own
/// spans as its children, in its trace.
#[tokio::test(start_paused = true)]
async fn worker_run_spans_export_through_tracing_opentelemetry() {
    use opentelemetry::trace::{SpanId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    let _serial = SERIAL.lock().await;

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("worker-tests")));
    let _guard = tracing::subscriber::set_default(subscriber);
    let host = TestHost::start(Host::builder().worker(exported)).unwrap();
    host.advance(Duration::from_secs(10)).await;
    let run_id = host.runs("exported")[0].run_id;
    host.stop().await.unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let attribute = |span: &opentelemetry_sdk::trace::SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
            .unwrap_or_default()
    };
    let mut runs: Vec<_> = spans.iter().filter(|s| s.name == "worker.run").collect();
    runs.sort_by_key(|s| attribute(s, "attempt"));
    let fields: Vec<[String; 5]> = runs
        .iter()
        .map(|s| ["worker", "run_id", "attempt", "trigger", "result"].map(|k| attribute(s, k)))
        .collect();
    let expected = |attempt: &str, result: &str| {
        [
            "exported".to_owned(),
            run_id.to_string(),
            attempt.to_owned(),
            "schedule".to_owned(),
            result.to_owned(),
        ]
    };
    assert_eq!(fields, [expected("1", "failure"), expected("2", "success")]);
    for run in &runs {
        assert_eq!(
            run.parent_span_id,
            SpanId::INVALID,
            "an attempt's span is a root"
        );
    }

    let fetches: Vec<_> = spans.iter().filter(|s| s.name == "fetch_orders").collect();
    assert_eq!(fetches.len(), 2, "{spans:#?}");
    for run in &runs {
        let children: Vec<_> = fetches
            .iter()
            .filter(|f| f.parent_span_id == run.span_context.span_id())
            .collect();
        assert_eq!(
            children.len(),
            1,
            "one fetch under attempt {}",
            attribute(run, "attempt")
        );
        assert_eq!(
            children[0].span_context.trace_id(),
            run.span_context.trace_id()
        );
    }
}
