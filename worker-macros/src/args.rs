//! Parsing and checking the keys of `#[worker(...)]`.

use std::time::Duration;

use proc_macro2::Span;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Token, UnOp};

/// Every key, in the order the docs list them.
const KEYS: [&str; 8] = [
    "every",
    "after",
    "missed",
    "retry",
    "backoff",
    "backoff_max",
    "timeout",
    "name",
];

const DURATION_FORMS: &str =
    "a number and a unit, such as `\"250ms\"`, `\"10s\"`, `\"5m\"` or `\"1h\"`";

/// `worker_core::DEFAULT_BACKOFF` and `worker_core::DEFAULT_BACKOFF_MAX`: this crate cannot
/// depend on `worker-core` (which depends on it), so they are repeated here, for the
/// `backoff <= backoff_max` check when only one of the two keys is given.
const DEFAULT_BACKOFF: (Duration, &str) = (Duration::from_secs(1), "1s");
const DEFAULT_BACKOFF_MAX: (Duration, &str) = (Duration::from_mins(1), "1m");

/// A value together with the span of the tokens it came from.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
    /// The value as the user wrote it, for error messages.
    pub(crate) text: String,
}

/// The missed-tick policies, as `missed = skip | burst | delay`.
#[derive(Clone, Copy)]
pub(crate) enum Missed {
    Skip,
    Burst,
    Delay,
}

/// The checked keys of one `#[worker(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) every: Option<Spanned<Duration>>,
    pub(crate) after: Option<Spanned<Duration>>,
    pub(crate) missed: Option<Spanned<Missed>>,
    pub(crate) retry: Option<Spanned<u32>>,
    pub(crate) backoff: Option<Spanned<Duration>>,
    pub(crate) backoff_max: Option<Spanned<Duration>>,
    pub(crate) timeout: Option<Spanned<Duration>>,
    pub(crate) name: Option<Spanned<String>>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            // Any identifier, keywords included, so that `type = ..` gets "unknown key" too.
            let key = Ident::parse_any(input)?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            match key.to_string().as_str() {
                "every" => set(&mut args.every, &key, period(&value, "every")?)?,
                "after" => set(&mut args.after, &key, duration(&value, "after")?)?,
                "missed" => set(&mut args.missed, &key, missed(&value)?)?,
                "retry" => set(&mut args.retry, &key, retry(&value)?)?,
                "backoff" => set(&mut args.backoff, &key, duration(&value, "backoff")?)?,
                "backoff_max" => {
                    set(&mut args.backoff_max, &key, period(&value, "backoff_max")?)?;
                }
                "timeout" => set(&mut args.timeout, &key, period(&value, "timeout")?)?,
                "name" => set(&mut args.name, &key, name(&value)?)?,
                _ => return Err(unknown_key(&key)),
            }
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
    /// Checks what involves several keys.
    fn check(&self) -> syn::Result<()> {
        if self.every.is_none() {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing schedule: `#[worker]` needs `every`, such as `#[worker(every = \"10s\")]`",
            ));
        }
        match (&self.backoff, &self.backoff_max) {
            (Some(backoff), Some(max)) if backoff.value > max.value => Err(syn::Error::new(
                backoff.span,
                format!(
                    "`backoff` must not be longer than `backoff_max` (`{}`): the first retry \
                     waits `backoff`, later retries double it up to `backoff_max`",
                    max.text
                ),
            )),
            (Some(backoff), None) if backoff.value > DEFAULT_BACKOFF_MAX.0 => Err(syn::Error::new(
                backoff.span,
                format!(
                    "`backoff` must not be longer than `backoff_max`, which defaults to \
                         `\"{}\"`: raise it too, such as `backoff_max = {}`",
                    DEFAULT_BACKOFF_MAX.1, backoff.text
                ),
            )),
            (None, Some(max)) if max.value < DEFAULT_BACKOFF.0 => Err(syn::Error::new(
                max.span,
                format!(
                    "`backoff_max` must not be shorter than `backoff`, which defaults to \
                     `\"{}\"`: lower it too, such as `backoff = {}`",
                    DEFAULT_BACKOFF.1, max.text
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn unknown_key(key: &Ident) -> syn::Error {
    let written = key.unraw().to_string();
    let valid = KEYS.map(|key| format!("`{key}`")).join(", ");
    let similar = KEYS
        .iter()
        .map(|candidate| (edit_distance(candidate, &written), candidate))
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

/// Stores a key's value, rejecting a second occurrence of the key.
fn set<T>(slot: &mut Option<T>, key: &Ident, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("duplicate key `{key}`: each key may be given once"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn duration(value: &Expr, key: &str) -> syn::Result<Spanned<Duration>> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    else {
        let example = match value {
            // `every = 10`: keep the number, add the unit most people mean.
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => format!("{}s", int.base10_digits()),
            _ => "10s".to_owned(),
        };
        return Err(syn::Error::new_spanned(
            value,
            format!("`{key}` expects a duration in a string, such as `{key} = \"{example}\"`"),
        ));
    };
    let text = lit.value();
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` cannot be negative: expected {DURATION_FORMS}"),
        ));
    }
    let value = humantime::parse_duration(trimmed).map_err(|err| {
        let expected = format!("`{key}` expects {DURATION_FORMS}");
        let message = match err {
            humantime::DurationError::Empty => format!("empty duration: {expected}"),
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("unknown unit `{unit}`: {expected}")
            }
            humantime::DurationError::NumberOverflow => {
                format!("duration `{text:?}` is too large for `{key}`")
            }
            _ => format!("invalid duration `{text:?}`: {expected}"),
        };
        syn::Error::new(lit.span(), message)
    })?;
    Ok(Spanned {
        value,
        span: lit.span(),
        text: format!("{text:?}"),
    })
}

/// A duration that must be greater than zero.
fn period(value: &Expr, key: &str) -> syn::Result<Spanned<Duration>> {
    let parsed = duration(value, key)?;
    if parsed.value.is_zero() {
        return Err(syn::Error::new(
            parsed.span,
            format!("`{key}` must be greater than zero, such as `{key} = \"10s\"`"),
        ));
    }
    Ok(parsed)
}

fn missed(value: &Expr) -> syn::Result<Spanned<Missed>> {
    const EXPECTED: &str = "expected `skip`, `burst` or `delay`, such as `missed = skip`";
    let policy = |name: &str| match name {
        "skip" => Some(Missed::Skip),
        "burst" => Some(Missed::Burst),
        "delay" => Some(Missed::Delay),
        _ => None,
    };
    match value {
        Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => {
            if let Some(ident) = path.path.get_ident() {
                let name = ident.unraw().to_string();
                return match policy(&name) {
                    Some(value) => Ok(Spanned {
                        value,
                        span: ident.span(),
                        text: name,
                    }),
                    None => Err(syn::Error::new(
                        ident.span(),
                        format!("unknown `missed` policy `{name}`: {EXPECTED}"),
                    )),
                };
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) if policy(&lit.value()).is_some() => {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "`missed` expects a policy without quotes: write `missed = {}`",
                    lit.value()
                ),
            ));
        }
        _ => {}
    }
    Err(syn::Error::new_spanned(
        value,
        format!("`missed` expects a policy: {EXPECTED}"),
    ))
}

fn retry(value: &Expr) -> syn::Result<Spanned<u32>> {
    const EXPECTED: &str = "the number of retries after the first attempt, such as `retry = 3`";
    let message = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) if lit.suffix().is_empty() => match lit.base10_parse::<u32>() {
            Ok(retries) => {
                return Ok(Spanned {
                    value: retries,
                    span: lit.span(),
                    text: retries.to_string(),
                });
            }
            Err(_) => format!("`retry` is too large: expected {EXPECTED}"),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => format!("`retry` cannot be negative: expected {EXPECTED}"),
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) if lit.value().parse::<u32>().is_ok() => format!(
            "`retry` expects an integer without quotes: write `retry = {}`",
            lit.value()
        ),
        _ => format!("`retry` expects an integer: {EXPECTED}"),
    };
    Err(syn::Error::new_spanned(value, message))
}

fn name(value: &Expr) -> syn::Result<Spanned<String>> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    else {
        return Err(syn::Error::new_spanned(
            value,
            "`name` expects a string, such as `name = \"sync-orders\"`",
        ));
    };
    let text = LitStr::value(lit);
    if text.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            "`name` must not be empty: leave it out to use the function's name, or write one such as `name = \"sync-orders\"`",
        ));
    }
    Ok(Spanned {
        span: lit.span(),
        text: format!("{text:?}"),
        value: text,
    })
}
