//! Parsing and checking the keys of `#[worker(...)]`.
//!
//! Every key is a row of [`KEYS`]: its name, how its value is written and checked ([`Kind`]),
//! and an example for messages. Parsing a key is looking up its row and running its kind's
//! parser, so a new `WorkerBuilder` method is one row here (and, for a new kind, one parser).
//! What involves several keys (one trigger, `time_zone` with `cron`, `jitter` below `every`,
//! `backoff` below `backoff_max`) is checked in [`Args::check`].

use std::time::{Duration, SystemTime};

use croner::parser::{CronParser, Seconds};

use proc_macro2::Span;
use quote::ToTokens as _;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned as _;
use syn::{Expr, ExprCall, ExprLit, ExprPath, ExprUnary, Ident, Lit, LitStr, Token, UnOp};

/// One key of `#[worker(...)]`: it expands to the `WorkerBuilder` method of the same name.
pub(crate) struct Key {
    pub(crate) name: &'static str,
    kind: Kind,
    /// A valid value as written in the attribute, for messages.
    example: &'static str,
}

/// How a key's value is written and checked.
#[derive(Clone, Copy)]
enum Kind {
    /// A duration in a string, within the key's range in `worker_keys::RANGES`.
    Duration,
    /// An unsuffixed integer within the key's range; `what` says what it counts.
    Integer { what: &'static str },
    /// A number greater than 0 and at most 1; `what` says what it is the share of.
    Ratio { what: &'static str },
    /// `true` or `false`.
    Bool,
    /// A bare key, or `key = true`.
    Flag,
    /// One identifier out of a closed set.
    Choice(&'static Choice),
    /// `skip`, `queue` or `allow(n)`.
    Overlap,
    /// The worker's name: a non-empty string.
    Name,
    /// A cron expression, checked as `worker_core::cron` parses it.
    Cron,
    /// An IANA time zone name.
    TimeZone,
}

/// A closed set of identifiers, each naming a variant of a `worker_core` enum.
struct Choice {
    /// The `worker_core` enum, for the expansion.
    ty: &'static str,
    /// What one value is called in messages: "unknown `missed` policy `x`".
    noun: &'static str,
    /// Each accepted identifier and the variant it stands for.
    options: &'static [(&'static str, &'static str)],
}

const MISSED: Choice = Choice {
    ty: "Missed",
    noun: "policy",
    options: &[("skip", "Skip"), ("burst", "Burst"), ("delay", "Delay")],
};

const OVERLAP: Choice = Choice {
    ty: "Overlap",
    noun: "policy",
    options: &[("skip", "Skip"), ("queue", "Queue")],
};

const BACKOFF_KIND: Choice = Choice {
    ty: "BackoffKind",
    noun: "value",
    options: &[
        ("constant", "Constant"),
        ("linear", "Linear"),
        ("exponential", "Exponential"),
    ],
};

const ESCALATE: Choice = Choice {
    ty: "Escalation",
    noun: "policy",
    options: &[("stop_worker", "StopWorker"), ("stop_host", "StopHost")],
};

const fn key(name: &'static str, kind: Kind, example: &'static str) -> Key {
    Key {
        name,
        kind,
        example,
    }
}

const DURATION: Kind = Kind::Duration;
const PERIOD: Kind = Kind::Duration;

/// Every key, in the order the docs list them (and the unknown-key message names them).
pub(crate) const KEYS: &[Key] = &[
    key("every", PERIOD, "\"10s\""),
    key("fixed_delay", PERIOD, "\"10s\""),
    key("cron", Kind::Cron, "\"0 */5 * * * *\""),
    key("once", Kind::Flag, "true"),
    key("time_zone", Kind::TimeZone, "\"Europe/Berlin\""),
    key("after", DURATION, "\"5s\""),
    key("jitter", DURATION, "\"2s\""),
    key("missed", Kind::Choice(&MISSED), "skip"),
    key("overlap", Kind::Overlap, "queue"),
    key("enabled", Kind::Bool, "false"),
    key(
        "retry",
        Kind::Integer {
            what: "the number of retries after the first attempt",
        },
        "3",
    ),
    key("backoff_kind", Kind::Choice(&BACKOFF_KIND), "linear"),
    key("backoff", DURATION, "\"1s\""),
    key("backoff_max", PERIOD, "\"1m\""),
    key("timeout", PERIOD, "\"30s\""),
    key(
        "circuit_failure_ratio",
        Kind::Ratio {
            what: "the share of failed runs in `circuit_window` that opens the circuit",
        },
        "0.5",
    ),
    key(
        "circuit_min_throughput",
        Kind::Integer {
            what: "the fewest runs in `circuit_window` before the circuit may open",
        },
        "10",
    ),
    key("circuit_window", PERIOD, "\"1m\""),
    key("circuit_break", PERIOD, "\"30s\""),
    key("restart_backoff", DURATION, "\"1s\""),
    key(
        "max_restarts",
        Kind::Integer {
            what: "the number of panics allowed within `restart_window` before escalating",
        },
        "5",
    ),
    key("restart_window", PERIOD, "\"1m\""),
    key("escalate", Kind::Choice(&ESCALATE), "stop_host"),
    key("stop_budget", PERIOD, "\"10s\""),
    key("stale_after", PERIOD, "\"5m\""),
    key("gates_readiness", Kind::Bool, "true"),
    key("gates_liveness", Kind::Bool, "true"),
    key("name", Kind::Name, "\"sync-orders\""),
];

/// The keys that say what starts a run; a worker has exactly one.
const TRIGGERS: [&str; 4] = ["every", "fixed_delay", "cron", "once"];
const TRIGGER_LIST: &str = "`every`, `fixed_delay`, `cron` or `once`";

const DURATION_FORMS: &str =
    "a number and a unit, such as `\"250ms\"`, `\"10s\"`, `\"5m\"` or `\"1h\"`";

const CRON_FORMS: &str = "5 fields (minute, hour, day of month, month, day of week), 6 with \
                          seconds first, 7 with a year last, or a nickname such as `@daily`: \
                          for example `cron = \"0 */5 * * * *\"`";

/// `worker_core::DEFAULT_BACKOFF` and `worker_core::DEFAULT_BACKOFF_MAX`: this crate cannot
/// depend on `worker-core` (which depends on it), so they are repeated here, for the
/// `backoff <= backoff_max` check when only one of the two keys is given.
const DEFAULT_BACKOFF: (Duration, &str) = (Duration::from_secs(1), "1s");
const DEFAULT_BACKOFF_MAX: (Duration, &str) = (Duration::from_mins(1), "1m");

/// A checked value.
pub(crate) enum Value {
    Duration(Duration),
    Integer(u32),
    Ratio(f64),
    Bool(bool),
    /// A flag that was set.
    Flag,
    /// `::worker_core::<ty>::<variant>`, or `<variant>(<arg>)` with an argument.
    Variant {
        ty: &'static str,
        variant: &'static str,
        arg: Option<u32>,
    },
    /// A string: a name, a cron expression, a time zone.
    Str(String),
}

/// One key as given, its value checked.
pub(crate) struct Setting {
    pub(crate) key: &'static str,
    pub(crate) key_span: Span,
    pub(crate) value: Value,
    /// The span of the value (of the key, for a bare flag).
    pub(crate) span: Span,
    /// The value as the user wrote it, for error messages.
    pub(crate) text: String,
}

/// The checked keys of one `#[worker(...)]`, in the order they were given.
#[derive(Default)]
pub(crate) struct Args {
    settings: Vec<Setting>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            // Any identifier, keywords included, so that `type = ..` gets "unknown key" too.
            let ident = Ident::parse_any(input)?;
            let written = ident.unraw().to_string();
            let Some(key) = KEYS.iter().find(|key| key.name == written) else {
                return Err(unknown_key(&ident));
            };
            let value = if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                Some(input.parse::<Expr>()?)
            } else {
                None
            };
            let setting = parse_value(key, &ident, value.as_ref())?;
            args.add(setting)?;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        args.check()?;
        Ok(args)
    }
}

impl Args {
    /// The keys given, in order.
    pub(crate) fn settings(&self) -> &[Setting] {
        &self.settings
    }

    /// The `name` key, if given.
    pub(crate) fn name(&self) -> Option<&str> {
        match self.get("name").map(|setting| &setting.value) {
            Some(Value::Str(name)) => Some(name),
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|setting| setting.key == key)
    }

    fn duration(&self, key: &str) -> Option<(Duration, &Setting)> {
        let setting = self.get(key)?;
        match setting.value {
            Value::Duration(duration) => Some((duration, setting)),
            _ => None,
        }
    }

    fn trigger(&self) -> Option<&Setting> {
        self.settings
            .iter()
            .find(|setting| TRIGGERS.contains(&setting.key))
    }

    /// Adds a key, rejecting a second occurrence of it and a second trigger.
    fn add(&mut self, setting: Setting) -> syn::Result<()> {
        if self.get(setting.key).is_some() {
            return Err(syn::Error::new(
                setting.key_span,
                format!(
                    "duplicate key `{}`: each key may be given once",
                    setting.key
                ),
            ));
        }
        if TRIGGERS.contains(&setting.key)
            && let Some(first) = self.trigger()
        {
            return Err(syn::Error::new(
                setting.key_span,
                format!(
                    "`{}` conflicts with `{}`: a worker has exactly one trigger, one of \
                     {TRIGGER_LIST}; remove one of them",
                    setting.key, first.key
                ),
            ));
        }
        self.settings.push(setting);
        Ok(())
    }

    /// Checks what involves several keys.
    fn check(&self) -> syn::Result<()> {
        let Some(trigger) = self.trigger() else {
            return Err(syn::Error::new(
                Span::call_site(),
                format!(
                    "missing schedule: `#[worker]` needs a trigger, one of {TRIGGER_LIST}, \
                     such as `#[worker(every = \"10s\")]`"
                ),
            ));
        };
        if let Some(zone) = self.get("time_zone")
            && trigger.key != "cron"
        {
            return Err(syn::Error::new(
                zone.key_span,
                format!(
                    "`time_zone` only applies to `cron`, and this worker runs on `{}`: remove \
                     `time_zone`, or use a cron schedule such as `cron = \"0 */5 * * * *\"`",
                    trigger.key
                ),
            ));
        }
        if let Some(cron) = self.get("cron")
            && let Value::Str(expression) = &cron.value
        {
            let zone = match self.get("time_zone").map(|zone| &zone.value) {
                Some(Value::Str(zone)) => zone.parse().unwrap_or(chrono_tz::UTC),
                _ => chrono_tz::UTC,
            };
            let parser = CronParser::builder().seconds(Seconds::Optional).build();
            if let Ok(parsed) = parser.parse(expression)
                && let Some(expected) =
                    worker_keys::never_fires(&parsed, expression, zone, SystemTime::now())
            {
                return Err(syn::Error::new(
                    cron.span,
                    format!("`cron` = {} never fires: expected {expected}", cron.text),
                ));
            }
        }
        if let (Some((jitter, setting)), Some((period, every))) =
            (self.duration("jitter"), self.duration("every"))
            && jitter >= period
        {
            return Err(syn::Error::new(
                setting.span,
                format!(
                    "`jitter` must be shorter than `every` (`{}`): each tick is delayed by up \
                     to `jitter`, which has to end before the next tick is due",
                    every.text
                ),
            ));
        }
        match (self.duration("backoff"), self.duration("backoff_max")) {
            (Some((backoff, setting)), Some((max, max_setting))) if backoff > max => {
                Err(syn::Error::new(
                    setting.span,
                    format!(
                        "`backoff` must not be longer than `backoff_max` (`{}`): the first \
                         retry waits `backoff`, later retries double it up to `backoff_max`",
                        max_setting.text
                    ),
                ))
            }
            (Some((backoff, setting)), None) if backoff > DEFAULT_BACKOFF_MAX.0 => {
                Err(syn::Error::new(
                    setting.span,
                    format!(
                        "`backoff` must not be longer than `backoff_max`, which defaults to \
                         `\"{}\"`: raise it too, such as `backoff_max = {}`",
                        DEFAULT_BACKOFF_MAX.1, setting.text
                    ),
                ))
            }
            (None, Some((max, setting))) if max < DEFAULT_BACKOFF.0 => Err(syn::Error::new(
                setting.span,
                format!(
                    "`backoff_max` must not be shorter than `backoff`, which defaults to \
                     `\"{}\"`: lower it too, such as `backoff = {}`",
                    DEFAULT_BACKOFF.1, setting.text
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn unknown_key(key: &Ident) -> syn::Error {
    let written = key.unraw().to_string();
    let valid = KEYS
        .iter()
        .map(|key| format!("`{}`", key.name))
        .collect::<Vec<_>>()
        .join(", ");
    let similar = KEYS
        .iter()
        .map(|candidate| (edit_distance(candidate.name, &written), candidate.name))
        .filter(|(distance, candidate)| {
            // A typo, or a longer or shorter form of a key (`retries`, `backoff_min`).
            *distance <= 2 || common_prefix(candidate, &written) >= 4
        })
        .min();
    let message = match similar {
        Some((_, similar)) => {
            format!("unknown key `{written}` (did you mean `{similar}`?): expected one of {valid}")
        }
        None => format!("unknown key `{written}`: expected one of {valid}"),
    };
    syn::Error::new(key.span(), message)
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(a, b)| a == b).count()
}

/// Levenshtein distance, for "did you mean"; keys are short, so the quadratic version will do.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Checks one key's value by its kind.
fn parse_value(key: &Key, ident: &Ident, value: Option<&Expr>) -> syn::Result<Setting> {
    let name = key.name;
    let Some(value) = value else {
        if let Kind::Flag = key.kind {
            return Ok(Setting {
                key: name,
                key_span: ident.span(),
                value: Value::Flag,
                span: ident.span(),
                text: name.to_owned(),
            });
        }
        return Err(syn::Error::new(
            ident.span(),
            format!("`{name}` expects a value: write `{name} = {}`", key.example),
        ));
    };
    let (value, span, text) = match key.kind {
        Kind::Duration => duration(value, key)?,
        Kind::Integer { what } => integer(value, key, what)?,
        Kind::Ratio { what } => ratio(value, key, what)?,
        Kind::Bool => boolean(value, key)?,
        Kind::Flag => flag(value, key)?,
        Kind::Choice(choice) => self::choice(value, key, choice, "")?,
        Kind::Overlap => overlap(value, key)?,
        Kind::Name => worker_name(value)?,
        Kind::Cron => cron(value)?,
        Kind::TimeZone => time_zone(value)?,
    };
    Ok(Setting {
        key: name,
        key_span: ident.span(),
        value,
        span,
        text,
    })
}

type Parsed = (Value, Span, String);

/// A string literal, or `None`.
fn string(value: &Expr) -> Option<&LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        _ => None,
    }
}

/// A bare identifier (raw or not), or `None`.
fn identifier(value: &Expr) -> Option<&Ident> {
    match value {
        Expr::Path(ExprPath {
            attrs, qself, path, ..
        }) if attrs.is_empty() && qself.is_none() => path.get_ident(),
        _ => None,
    }
}

/// The range of `key` in the table the runtime checks too.
fn range_of(key: &str) -> worker_keys::Range {
    worker_keys::range(key).unwrap_or_else(|| unreachable!("`{key}` has a range"))
}

/// The message for a value outside its key's range, worded as the runtime words it.
fn out_of_range(name: &str, text: &str, range: worker_keys::Range) -> String {
    format!(
        "`{name}` = {text} is out of range: expected {}",
        range.expected()
    )
}

fn duration(value: &Expr, key: &Key) -> syn::Result<Parsed> {
    let name = key.name;
    let range = range_of(name);
    let Some(lit) = string(value) else {
        let example = match value {
            // `every = 10`: keep the number, add the unit most people mean.
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => format!("\"{}s\"", int.base10_digits()),
            _ => key.example.to_owned(),
        };
        return Err(syn::Error::new_spanned(
            value,
            format!("`{name}` expects a duration in a string, such as `{name} = {example}`"),
        ));
    };
    let text = lit.value();
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{name}` cannot be negative: expected {DURATION_FORMS}"),
        ));
    }
    let parsed = humantime::parse_duration(trimmed).map_err(|err| {
        let expected = format!("`{name}` expects {DURATION_FORMS}");
        let message = match err {
            humantime::DurationError::Empty => format!("empty duration: {expected}"),
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("unknown unit `{unit}`: {expected}")
            }
            humantime::DurationError::NumberOverflow => {
                out_of_range(name, &format!("{text:?}"), range)
            }
            _ => format!("invalid duration `{text:?}`: {expected}"),
        };
        syn::Error::new(lit.span(), message)
    })?;
    if !range.contains_duration(parsed) {
        return Err(syn::Error::new(
            lit.span(),
            out_of_range(name, &format!("{text:?}"), range),
        ));
    }
    Ok((Value::Duration(parsed), lit.span(), format!("{text:?}")))
}

fn integer(value: &Expr, key: &Key, what: &str) -> syn::Result<Parsed> {
    let name = key.name;
    let range = range_of(name);
    let expected = format!("{what}, such as `{name} = {}`", key.example);
    let message = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) if lit.suffix().is_empty() => match lit.base10_parse::<u64>() {
            Ok(number) if range.contains_count(number) => {
                let number = u32::try_from(number).unwrap_or(u32::MAX);
                return Ok((Value::Integer(number), lit.span(), number.to_string()));
            }
            _ => out_of_range(name, lit.base10_digits(), range),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => format!("`{name}` cannot be negative: expected {expected}"),
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) if lit.value().parse::<u32>().is_ok() => format!(
            "`{name}` expects an integer without quotes: write `{name} = {}`",
            lit.value()
        ),
        _ => format!("`{name}` expects an integer: expected {expected}"),
    };
    Err(syn::Error::new_spanned(value, message))
}

fn ratio(value: &Expr, key: &Key, what: &str) -> syn::Result<Parsed> {
    let name = key.name;
    let range = format!(
        "greater than 0 and at most 1: {what}, such as `{name} = {}`",
        key.example
    );
    let number = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(lit),
            ..
        }) => lit.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit.base10_parse::<f64>().ok(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            return Err(syn::Error::new_spanned(
                value,
                format!("`{name}` must be {range}"),
            ));
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) if lit.value().trim().parse::<f64>().is_ok() => {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "`{name}` expects a number without quotes: write `{name} = {}`",
                    lit.value().trim()
                ),
            ));
        }
        _ => None,
    };
    match number {
        Some(ratio) if ratio > 0.0 && ratio <= 1.0 => {
            Ok((Value::Ratio(ratio), value.span(), ratio.to_string()))
        }
        Some(_) => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` must be {range}"),
        )),
        None => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` expects a number {range}"),
        )),
    }
}

fn boolean(value: &Expr, key: &Key) -> syn::Result<Parsed> {
    let name = key.name;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(lit),
            ..
        }) => Ok((Value::Bool(lit.value), lit.span, lit.value.to_string())),
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) if matches!(lit.value().as_str(), "true" | "false") => Err(syn::Error::new(
            lit.span(),
            format!(
                "`{name}` expects `true` or `false` without quotes: write `{name} = {}`",
                lit.value()
            ),
        )),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                "`{name}` expects `true` or `false`, such as `{name} = {}`",
                key.example
            ),
        )),
    }
}

fn flag(value: &Expr, key: &Key) -> syn::Result<Parsed> {
    let name = key.name;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(lit),
            ..
        }) if lit.value => Ok((Value::Flag, lit.span, name.to_owned())),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` is a flag: write `{name}` or `{name} = true`, or leave it out"),
        )),
    }
}

/// One identifier out of `choice`; `more` adds accepted forms that are not identifiers.
fn choice(value: &Expr, key: &Key, choice: &Choice, more: &str) -> syn::Result<Parsed> {
    let name = key.name;
    let noun = choice.noun;
    let mut forms: Vec<String> = choice
        .options
        .iter()
        .map(|(option, _)| format!("`{option}`"))
        .collect();
    if !more.is_empty() {
        forms.push(more.to_owned());
    }
    let expected = match forms.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => forms.join(""),
    };
    let expected = format!("expected {expected}, such as `{name} = {}`", key.example);
    let variant = |written: &str| {
        choice
            .options
            .iter()
            .find(|(option, _)| *option == written)
            .map(|(_, variant)| *variant)
    };
    if let Some(ident) = identifier(value) {
        let written = ident.unraw().to_string();
        return match variant(&written) {
            Some(variant) => Ok((
                Value::Variant {
                    ty: choice.ty,
                    variant,
                    arg: None,
                },
                ident.span(),
                written,
            )),
            None => Err(syn::Error::new(
                ident.span(),
                format!("unknown `{name}` {noun} `{written}`: {expected}"),
            )),
        };
    }
    if let Some(lit) = string(value)
        && variant(&lit.value()).is_some()
    {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{name}` expects a {noun} without quotes: write `{name} = {}`",
                lit.value()
            ),
        ));
    }
    Err(syn::Error::new_spanned(
        value,
        format!("`{name}` expects a {noun}: {expected}"),
    ))
}

/// `skip`, `queue` or `allow(n)` with `n >= 1`.
fn overlap(value: &Expr, key: &Key) -> syn::Result<Parsed> {
    const ALLOW: &str = "`overlap = allow(n)` expects the number of runs that may overlap, at \
                         least 1, such as `overlap = allow(2)`";
    let allowed = |value: &Expr| identifier(value).is_some_and(|ident| ident == "allow");
    match value {
        Expr::Call(ExprCall { func, args, .. }) if allowed(func) => {
            let limit = match args.first() {
                Some(Expr::Lit(ExprLit {
                    lit: Lit::Int(lit), ..
                })) if args.len() == 1 && lit.suffix().is_empty() => lit.base10_parse::<u32>(),
                _ => return Err(syn::Error::new_spanned(value, ALLOW)),
            };
            let range = range_of("overlap");
            match limit {
                Ok(0) => Err(syn::Error::new_spanned(
                    &args[0],
                    format!("`allow(0)` would never run the worker: {ALLOW}"),
                )),
                Ok(limit) if !range.contains_count(u64::from(limit)) => {
                    Err(syn::Error::new_spanned(
                        &args[0],
                        format!(
                            "`overlap` = allow({limit}) is out of range: expected `allow(n)` with n {}",
                            range.expected()
                        ),
                    ))
                }
                Ok(limit) => Ok((
                    Value::Variant {
                        ty: OVERLAP.ty,
                        variant: "Allow",
                        arg: Some(limit),
                    },
                    value.span(),
                    format!("allow({limit})"),
                )),
                Err(_) => Err(syn::Error::new_spanned(
                    &args[0],
                    format!(
                        "`overlap` = allow({}) is out of range: expected `allow(n)` with n {}",
                        args[0].to_token_stream(),
                        range_of("overlap").expected()
                    ),
                )),
            }
        }
        _ if allowed(value) => Err(syn::Error::new_spanned(
            value,
            "`overlap = allow` needs the number of runs that may overlap: write `overlap = \
             allow(2)`",
        )),
        _ => choice(value, key, &OVERLAP, "`allow(n)`"),
    }
}

fn worker_name(value: &Expr) -> syn::Result<Parsed> {
    let Some(lit) = string(value) else {
        return Err(syn::Error::new_spanned(
            value,
            "`name` expects a string, such as `name = \"sync-orders\"`",
        ));
    };
    let text = lit.value();
    if text.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "`name` must not be empty: leave it out to use the function's name, or write one such as `name = \"sync-orders\"`",
        ));
    }
    Ok((Value::Str(text.clone()), lit.span(), format!("{text:?}")))
}

fn cron(value: &Expr) -> syn::Result<Parsed> {
    let Some(lit) = string(value) else {
        return Err(syn::Error::new_spanned(
            value,
            format!("`cron` expects a cron expression in a string: {CRON_FORMS}"),
        ));
    };
    let expression = lit.value();
    // Exactly the parser `worker_core::cron::CronSchedule::parse` uses, so what compiles runs.
    let parser = CronParser::builder().seconds(Seconds::Optional).build();
    if let Err(err) = parser.parse(&expression) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "invalid cron expression: {}; expected {CRON_FORMS}",
                cron_reason(err)
            ),
        ));
    }
    Ok((
        Value::Str(expression.clone()),
        lit.span(),
        format!("{expression:?}"),
    ))
}

fn time_zone(value: &Expr) -> syn::Result<Parsed> {
    let Some(lit) = string(value) else {
        return Err(syn::Error::new_spanned(
            value,
            "`time_zone` expects an IANA time zone name in a string, such as \
             `time_zone = \"Europe/Berlin\"`",
        ));
    };
    let zone = lit.value();
    if zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "unknown time zone `{zone}`: expected an IANA name such as `\"UTC\"` or \
                 `\"Europe/Berlin\"`"
            ),
        ));
    }
    Ok((Value::Str(zone.clone()), lit.span(), format!("{zone:?}")))
}

/// croner's reason, as a rustc-style clause: its messages are sentences under a category
/// ("Component error: Number out of bounds."), and call the expression a `CronPattern`.
fn cron_reason(err: croner::errors::CronError) -> String {
    use croner::errors::CronError;

    let reason = match err {
        CronError::InvalidPattern(reason)
        | CronError::IllegalCharacters(reason)
        | CronError::ComponentError(reason) => reason,
        other => other.to_string(),
    };
    let reason = reason
        .trim()
        .trim_end_matches('.')
        .replace("CronPattern", "the expression");
    let mut chars = reason.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(attribute: &str) -> syn::Result<Args> {
        syn::parse_str::<Args>(attribute)
    }

    /// The example of every key, as messages show it, is accepted.
    #[test]
    fn every_example_parses() {
        for key in KEYS {
            let attribute = match key.name {
                trigger if TRIGGERS.contains(&trigger) => format!("{trigger} = {}", key.example),
                "time_zone" => format!("cron = \"@daily\", time_zone = {}", key.example),
                other => format!("every = \"1h\", {other} = {}", key.example),
            };
            let args = parse(&attribute).unwrap_or_else(|err| panic!("{attribute}: {err}"));
            assert!(args.get(key.name).is_some(), "{attribute}");
        }
    }

    #[test]
    fn keys_are_unique_and_listed_once() {
        for (i, key) in KEYS.iter().enumerate() {
            assert!(
                KEYS[i + 1..].iter().all(|other| other.name != key.name),
                "{} is listed twice",
                key.name
            );
        }
        for trigger in TRIGGERS {
            assert!(KEYS.iter().any(|key| key.name == trigger), "{trigger}");
        }
    }

    #[test]
    fn overlap_and_flags() {
        let args = parse("once, overlap = allow(3)").unwrap();
        assert!(matches!(args.get("once").unwrap().value, Value::Flag));
        assert!(matches!(
            args.get("overlap").unwrap().value,
            Value::Variant {
                variant: "Allow",
                arg: Some(3),
                ..
            }
        ));
        let err = parse("every = \"1s\", overlap = allow()").err().unwrap();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }

    #[test]
    fn ratio_accepts_an_integer_one() {
        let args = parse("every = \"1s\", circuit_failure_ratio = 1").unwrap();
        assert!(matches!(
            args.get("circuit_failure_ratio").unwrap().value,
            Value::Ratio(ratio) if (ratio - 1.0).abs() < f64::EPSILON
        ));
    }
}
