//! The attribute's literals as the text the shared parser reads (`worker_keys::parse`): the
//! digits of an integer, the identifier of a choice, `allow(3)`, the contents of a string.
//!
//! What is the attribute's own stays here: a literal of the wrong form gets a hint about the
//! form ("without quotes", "expects a duration in a string"); every other refusal is the
//! shared one.

use syn::ext::IdentExt as _;
use syn::{Expr, ExprCall, ExprLit, ExprPath, ExprUnary, Ident, Lit, LitStr, UnOp};
use worker_keys::{Key, Kind};

/// A value written in the attribute: the text for the shared parser, and the value as the
/// user wrote it, for messages.
pub(crate) struct Written {
    pub(crate) text: String,
    pub(crate) shown: String,
}

/// The text of `value` for `key`, or a hint about the form a value of `key` is written in.
#[allow(
    clippy::too_many_lines,
    reason = "one arm per kind of key, each with its hints, reads best in one place"
)]
pub(crate) fn text(key: &'static Key, value: &Expr) -> syn::Result<Written> {
    let name = key.name;
    let example = key.example;
    let hint = |message: String| Err(syn::Error::new_spanned(value, message));
    // Numbers, identifiers, `allow(n)` and booleans are shown as the text parsed: `-1`, not
    // the token stream's `- 1`.
    let written = |text: String| {
        Ok(Written {
            shown: text.clone(),
            text,
        })
    };
    match key.kind {
        Kind::Duration(_) => match (string(value), number(value)) {
            (Some(lit), _) => Ok(quoted(lit)),
            // `every = 10`: keep the number, add the unit most people mean.
            (None, Some(digits)) if !digits.starts_with('-') => hint(format!(
                "`{name}` expects a duration in a string, such as `{name} = \"{digits}s\"`"
            )),
            _ => hint(format!(
                "`{name}` expects a duration in a string, such as `{name} = {example}`"
            )),
        },
        Kind::Count(_) | Kind::Ratio => {
            if let Some(digits) = number(value) {
                return written(digits);
            }
            let what = if matches!(key.kind, Kind::Ratio) {
                "a number"
            } else {
                "a whole number"
            };
            match string(value) {
                Some(lit) if lit.value().trim().parse::<f64>().is_ok() => hint(format!(
                    "`{name}` expects {what} without quotes: write `{name} = {}`",
                    lit.value().trim()
                )),
                _ => hint(format!(
                    "`{name}` expects {what}, such as `{name} = {example}`"
                )),
            }
        }
        Kind::Bool | Kind::Flag => match (value, string(value)) {
            (
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(lit),
                    ..
                }),
                _,
            ) => written(lit.value.to_string()),
            (_, Some(lit)) if matches!(lit.value().as_str(), "true" | "false") => hint(format!(
                "`{name}` expects `true` or `false` without quotes: write `{name} = {}`",
                lit.value()
            )),
            _ if matches!(key.kind, Kind::Flag) => hint(format!(
                "`{name}` is a flag: write `{name}` or `{name} = true`, or leave it out"
            )),
            _ => hint(format!(
                "`{name}` expects `true` or `false`, such as `{name} = {example}`"
            )),
        },
        Kind::Choice(_) | Kind::Overlap(_) => {
            if let Some(ident) = identifier(value) {
                if matches!(key.kind, Kind::Overlap(_)) && ident == "allow" {
                    return hint(
                        "`overlap = allow` needs the number of runs that may overlap: write \
                         `overlap = allow(2)`"
                            .to_owned(),
                    );
                }
                return written(ident.unraw().to_string());
            }
            if let Expr::Call(ExprCall { func, args, .. }) = value
                && matches!(key.kind, Kind::Overlap(_))
                && identifier(func).is_some_and(|ident| ident == "allow")
            {
                return match (args.len(), args.first().and_then(number)) {
                    (1, Some(digits)) => written(format!("allow({digits})")),
                    _ => hint(
                        "`overlap = allow(n)` expects the number of runs that may overlap, \
                         such as `overlap = allow(2)`"
                            .to_owned(),
                    ),
                };
            }
            match string(value) {
                Some(lit) if worker_keys::parse(key, &lit.value()).is_ok() => hint(format!(
                    "`{name}` expects a name without quotes: write `{name} = {}`",
                    lit.value()
                )),
                _ => hint(format!(
                    "`{name}` expects {}, such as `{name} = {example}`",
                    worker_keys::expected(key)
                )),
            }
        }
        Kind::Name | Kind::Cron | Kind::TimeZone => match string(value) {
            Some(lit) => Ok(quoted(lit)),
            None => hint(format!(
                "`{name}` expects {} in a string, such as `{name} = {example}`",
                match key.kind {
                    Kind::Name => "a name",
                    Kind::Cron => "a cron expression",
                    _ => "an IANA time zone name",
                }
            )),
        },
        _ => hint(format!(
            "`{name}` expects a value such as `{name} = {example}`"
        )),
    }
}

fn quoted(lit: &LitStr) -> Written {
    let text = lit.value();
    Written {
        shown: format!("{text:?}"),
        text,
    }
}

/// A string literal, or `None`.
fn string(value: &Expr) -> Option<&LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Some(lit),
        _ => None,
    }
}

/// An unsuffixed integer or float literal as written (`1_000` and `0x10` too, which the
/// shared parser refuses as the environment would), with a minus sign if negated.
fn number(value: &Expr) -> Option<String> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) if lit.suffix().is_empty() => Some(lit.to_string()),
        Expr::Lit(ExprLit {
            lit: Lit::Float(lit),
            ..
        }) if lit.suffix().is_empty() => Some(lit.to_string()),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => number(expr)
            .filter(|digits| !digits.starts_with('-'))
            .map(|digits| format!("-{digits}")),
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
