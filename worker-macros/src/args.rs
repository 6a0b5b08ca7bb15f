//! Parsing and checking the keys of `#[worker(...)]`.
//!
//! Keys, their values and their rules are `worker_keys`'s: a key is looked up in its table
//! ([`worker_keys::KEYS`]), its literal becomes text ([`literal::text`]) for the shared parser
//! ([`worker_keys::parse`]), and the keys given are checked together by the shared check
//! ([`worker_keys::Settings::check`]), the one the host runs on the builder, the
//! configuration file and the environment. What stays here is the attribute's own: spans,
//! duplicates, "did you mean", and hints about how a literal is written.

use std::time::SystemTime;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens as _;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Token};
use worker_keys::{KEYS, Key, Kind, Refusal, Settings, Value};

use crate::literal;

/// One key as given, its value parsed and checked.
pub(crate) struct Setting {
    pub(crate) key: &'static Key,
    key_span: Span,
    pub(crate) value: Value,
    /// The value's tokens (the key's, for a bare flag), for errors.
    tokens: TokenStream,
    /// The value as the user wrote it, for error messages.
    text: String,
}

/// The checked keys of one `#[worker(...)]`, in the order they were given.
#[derive(Default)]
pub(crate) struct Args {
    settings: Vec<Setting>,
    /// `crate = "path"`: where the expansion finds worker-core, for a crate that re-exports it.
    krate: Option<syn::Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            // Any identifier, keywords included, so that `type = ..` gets "unknown key" too.
            let ident = Ident::parse_any(input)?;
            let written = ident.unraw().to_string();
            if written == "crate" {
                args.set_crate(&ident, input)?;
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
                continue;
            }
            let Some(key) = worker_keys::key(&written) else {
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
    /// The path of worker-core in the expansion: `::worker_core`, or the `crate` key's.
    pub(crate) fn krate(&self) -> TokenStream {
        self.krate.as_ref().map_or_else(
            || quote::quote!(::worker_core),
            quote::ToTokens::to_token_stream,
        )
    }

    /// Reads `crate = "path"`: the attribute's own key, not a worker setting.
    fn set_crate(&mut self, ident: &Ident, input: ParseStream<'_>) -> syn::Result<()> {
        const FORM: &str = "`crate` names where worker-core is, as a path in a string: \
                            `crate = \"my_platform::worker_core\"`";
        if self.krate.is_some() {
            return Err(syn::Error::new(
                ident.span(),
                "duplicate key `crate`: each key may be given once",
            ));
        }
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(ident.span(), FORM));
        }
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        let Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(text),
            ..
        }) = &value
        else {
            return Err(syn::Error::new_spanned(&value, FORM));
        };
        let path = text
            .parse_with(syn::Path::parse_mod_style)
            .map_err(|_| syn::Error::new(text.span(), FORM))?;
        self.krate = Some(path);
        Ok(())
    }

    /// The keys given, in order.
    pub(crate) fn settings(&self) -> &[Setting] {
        &self.settings
    }

    /// The `name` key, if given.
    pub(crate) fn name(&self) -> Option<&str> {
        match self.get("name").map(|setting| &setting.value) {
            Some(Value::Text(name)) => Some(name),
            _ => None,
        }
    }

    /// The `queue` key, if given.
    pub(crate) fn queue(&self) -> Option<&str> {
        match self.get("queue").map(|setting| &setting.value) {
            Some(Value::Text(name)) => Some(name),
            _ => None,
        }
    }

    /// Whether the queue is durable (`durable`).
    pub(crate) fn is_durable(&self) -> bool {
        self.get("durable").is_some()
    }

    fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|setting| setting.key.name == key)
    }

    /// Adds a key, rejecting a second occurrence of it and a second trigger.
    fn add(&mut self, setting: Setting) -> syn::Result<()> {
        let name = setting.key.name;
        if self.get(name).is_some() {
            return Err(syn::Error::new(
                setting.key_span,
                format!("duplicate key `{name}`: each key may be given once"),
            ));
        }
        if setting.key.is_trigger()
            && let Some(first) = self.settings.iter().find(|s| s.key.is_trigger())
        {
            let first = format!("`{}`", first.key.name);
            let refusal = Refusal::second_trigger(name, &setting.text, &first);
            return Err(syn::Error::new(setting.key_span, refusal.to_string()));
        }
        self.settings.push(setting);
        Ok(())
    }

    /// The shared check over the keys given, pointed at the value it refuses.
    fn check(&self) -> syn::Result<()> {
        let mut settings = Settings::new();
        for setting in &self.settings {
            settings.set(setting.key, setting.value.clone());
        }
        let Err(mut refusal) = settings.check(SystemTime::now()) else {
            return Ok(());
        };
        match self.get(refusal.key) {
            Some(setting) => {
                refusal.value = Some(setting.text.clone());
                Err(syn::Error::new_spanned(
                    &setting.tokens,
                    refusal.to_string(),
                ))
            }
            // No trigger: the attribute as a whole.
            None => Err(syn::Error::new(Span::call_site(), refusal.to_string())),
        }
    }
}

/// Parses one key's value with the shared parser.
fn parse_value(key: &'static Key, ident: &Ident, value: Option<&Expr>) -> syn::Result<Setting> {
    let name = key.name;
    let Some(value) = value else {
        if let Kind::Flag = key.kind {
            return Ok(Setting {
                key,
                key_span: ident.span(),
                value: Value::Flag,
                tokens: ident.to_token_stream(),
                text: "true".to_owned(),
            });
        }
        return Err(syn::Error::new(
            ident.span(),
            format!("`{name}` expects a value: write `{name} = {}`", key.example),
        ));
    };
    let written = literal::text(key, value)?;
    let parsed = worker_keys::parse(key, &written.text).map_err(|mut refusal| {
        refusal.value = Some(written.shown.clone());
        syn::Error::new_spanned(value, refusal.to_string())
    })?;
    Ok(Setting {
        key,
        key_span: ident.span(),
        value: parsed,
        tokens: value.to_token_stream(),
        text: written.shown,
    })
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
