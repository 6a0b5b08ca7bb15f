//! Parsing and checking the keys of `#[worker(...)]`.

use std::time::Duration;

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token};

mod kw {
    syn::custom_keyword!(every);
    syn::custom_keyword!(after);
    syn::custom_keyword!(missed);
    syn::custom_keyword!(retry);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(backoff_max);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(name);
}

const DURATION_FORMS: &str =
    "a number and a unit, such as `\"250ms\"`, `\"10s\"`, `\"5m\"` or `\"1h\"`";

/// A value together with the span of the literal it came from.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
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
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::every) {
                let key = key::<kw::every>(input)?;
                set(&mut args.every, key, "every", period(input, "every")?)?;
            } else if lookahead.peek(kw::after) {
                let key = key::<kw::after>(input)?;
                set(&mut args.after, key, "after", duration(input, "after")?)?;
            } else if lookahead.peek(kw::missed) {
                let key = key::<kw::missed>(input)?;
                set(&mut args.missed, key, "missed", missed(input)?)?;
            } else if lookahead.peek(kw::retry) {
                let key = key::<kw::retry>(input)?;
                set(&mut args.retry, key, "retry", retry(input)?)?;
            } else if lookahead.peek(kw::backoff_max) {
                let key = key::<kw::backoff_max>(input)?;
                let value = period(input, "backoff_max")?;
                set(&mut args.backoff_max, key, "backoff_max", value)?;
            } else if lookahead.peek(kw::backoff) {
                let key = key::<kw::backoff>(input)?;
                set(
                    &mut args.backoff,
                    key,
                    "backoff",
                    duration(input, "backoff")?,
                )?;
            } else if lookahead.peek(kw::timeout) {
                let key = key::<kw::timeout>(input)?;
                set(&mut args.timeout, key, "timeout", period(input, "timeout")?)?;
            } else if lookahead.peek(kw::name) {
                let key = key::<kw::name>(input)?;
                set(&mut args.name, key, "name", name(input)?)?;
            } else {
                return Err(lookahead.error());
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
        if let (Some(backoff), Some(max)) = (&self.backoff, &self.backoff_max)
            && backoff.value > max.value
        {
            return Err(syn::Error::new(
                backoff.span,
                "`backoff` is longer than `backoff_max`; the first retry delay must be at most the maximum",
            ));
        }
        Ok(())
    }
}

/// Parses `key =`, returning the key's span.
fn key<K: Parse + syn::spanned::Spanned>(input: ParseStream<'_>) -> syn::Result<Span> {
    let key: K = input.parse()?;
    input.parse::<Token![=]>()?;
    Ok(key.span())
}

fn set<T>(slot: &mut Option<T>, key: Span, name: &str, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key,
            format!("duplicate key `{name}`; each key may appear once"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn duration(input: ParseStream<'_>, key: &str) -> syn::Result<Spanned<Duration>> {
    let Ok(lit) = input.parse::<LitStr>() else {
        return Err(input.error(format!(
            "`{key}` expects a duration string: {DURATION_FORMS}"
        )));
    };
    let text = lit.value();
    match humantime::parse_duration(text.trim()) {
        Ok(value) => Ok(Spanned {
            value,
            span: lit.span(),
        }),
        Err(reason) => Err(syn::Error::new(
            lit.span(),
            format!("invalid duration `{text}` for `{key}` ({reason}): expected {DURATION_FORMS}"),
        )),
    }
}

/// A duration that must be greater than zero.
fn period(input: ParseStream<'_>, key: &str) -> syn::Result<Spanned<Duration>> {
    let parsed = duration(input, key)?;
    if parsed.value.is_zero() {
        return Err(syn::Error::new(
            parsed.span,
            format!("`{key}` must be greater than zero"),
        ));
    }
    Ok(parsed)
}

fn missed(input: ParseStream<'_>) -> syn::Result<Spanned<Missed>> {
    const EXPECTED: &str = "expected `skip`, `burst` or `delay`, such as `missed = skip`";
    let Ok(ident) = input.parse::<Ident>() else {
        return Err(input.error(format!("`missed` expects a policy: {EXPECTED}")));
    };
    let value = match ident.to_string().as_str() {
        "skip" => Missed::Skip,
        "burst" => Missed::Burst,
        "delay" => Missed::Delay,
        other => {
            return Err(syn::Error::new(
                ident.span(),
                format!("unknown `missed` policy `{other}`: {EXPECTED}"),
            ));
        }
    };
    Ok(Spanned {
        value,
        span: ident.span(),
    })
}

fn retry(input: ParseStream<'_>) -> syn::Result<Spanned<u32>> {
    const EXPECTED: &str =
        "`retry` expects the number of retries after the first attempt, such as `retry = 3`";
    let Ok(lit) = input.parse::<LitInt>() else {
        return Err(input.error(EXPECTED));
    };
    match lit.base10_parse::<u32>() {
        Ok(value) if lit.suffix().is_empty() => Ok(Spanned {
            value,
            span: lit.span(),
        }),
        _ => Err(syn::Error::new(lit.span(), EXPECTED)),
    }
}

fn name(input: ParseStream<'_>) -> syn::Result<Spanned<String>> {
    let Ok(lit) = input.parse::<LitStr>() else {
        return Err(input.error("`name` expects a string, such as `name = \"sync-orders\"`"));
    };
    let value = lit.value();
    if value.trim().is_empty() {
        return Err(syn::Error::new(lit.span(), "`name` must not be empty"));
    }
    Ok(Spanned {
        value,
        span: lit.span(),
    })
}
