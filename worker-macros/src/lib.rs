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

use proc_macro::TokenStream;
use syn::ItemFn;

#[doc = include_str!("worker.md")]
#[proc_macro_attribute]
pub fn worker(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match syn::parse::<ItemFn>(item.clone()) {
        Ok(item) => item,
        // Not a function at all: let rustc report it along with our error.
        Err(err) => {
            let mut out = proc_macro2::TokenStream::from(item);
            out.extend(err.to_compile_error());
            return out.into();
        }
    };
    let parsed = syn::parse::<args::Args>(args);
    let checked = input::check(&item);
    match (parsed, checked) {
        (Ok(args), Ok(arguments)) => expand::expand(&args, item, &arguments).into(),
        (Err(mut err), Err(more)) => {
            err.combine(more);
            fallback::expand(&err, &item.vis, &item.sig.ident).into()
        }
        (Err(err), _) | (_, Err(err)) => fallback::expand(&err, &item.vis, &item.sig.ident).into(),
    }
}
