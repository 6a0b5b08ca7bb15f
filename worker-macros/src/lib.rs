//! The `#[worker]` attribute of [`worker-core`](https://docs.rs/worker-core). Depend on
//! `worker-core` and use it as `worker_core::worker`; this crate is its implementation.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod args;
mod expand;
mod fallback;
mod input;
mod literal;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;
use syn::ItemFn;

/// Not public API: writes out the rest of a `#[worker]` expansion after the unit struct it is
/// put on. The struct carries everything else, so that `#[worker]` on an associated function,
/// where no struct can be, is one error at the function's name rather than one per item the
/// expansion makes.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn __items(rest: TokenStream, item: TokenStream) -> TokenStream {
    let mut out = item;
    out.extend(rest);
    out
}

#[doc = include_str!("worker.md")]
#[proc_macro_attribute]
pub fn worker(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match syn::parse::<ItemFn>(item.clone()) {
        Ok(item) => item,
        // Not a function: keep the item as written, so nothing else breaks, and say so.
        Err(err) => {
            let err = match syn::parse::<syn::Item>(item.clone()) {
                Ok(syn::Item::Fn(_)) | Err(_) => err,
                Ok(_) => {
                    syn::Error::new(err.span(), "`#[worker]` can only be used on an `async fn`")
                }
            };
            let mut out = proc_macro2::TokenStream::from(item);
            out.extend(err.to_compile_error());
            return out.into();
        }
    };
    let parsed = syn::parse::<args::Args>(args);
    let checked = input::check(&item);
    match (parsed, checked) {
        (Ok(args), Ok(arguments)) => match input::payload(&args, &item, &arguments) {
            Ok(payload) => expand::expand(&args, item, &arguments, payload.as_ref()).into(),
            Err(err) => {
                let mut out = err.to_compile_error();
                out.extend(expand::expand(
                    &args::Args::default(),
                    item,
                    &arguments,
                    None,
                ));
                out.into()
            }
        },
        // Only the attribute is wrong: report it, and expand the function as if it had no keys,
        // so that `.worker(name)`, direct calls in tests and the body itself are still checked
        // and add no error of their own.
        (Err(err), Ok(arguments)) => {
            let mut out = err.to_compile_error();
            out.extend(expand::expand(
                &args::Args::default(),
                item,
                &arguments,
                None,
            ));
            out.into()
        }
        (parsed, Err(err)) => {
            let (errors, krate) = match parsed {
                Err(mut errors) => {
                    errors.combine(err);
                    (errors, args::Args::default().krate())
                }
                Ok(args) => (err, args.krate()),
            };
            fallback::expand(&errors, item, &krate).into()
        }
    }
}
