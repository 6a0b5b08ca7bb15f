//! What `#[worker]` emits when the function itself cannot be a worker: the errors, plus a
//! stand-in for the worker so the user's `.worker(name)` call adds no second, confusing error.
//!
//! (When only the attribute is wrong, `lib.rs` reports it and expands the function with default
//! keys instead, so calls to it and its body are still checked.)

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::{FnArg, ItemFn};

/// `krate` is where worker-core is (`#krate` unless `crate = ".."` said otherwise).
pub(crate) fn expand(errors: &syn::Error, mut item: ItemFn, krate: &TokenStream) -> TokenStream {
    let errors = errors.to_compile_error();
    // A method: we are inside an `impl` or a trait, where a struct cannot be declared. Keep the
    // method as written, so its callers and its body see no error of ours.
    if matches!(item.sig.inputs.first(), Some(FnArg::Receiver(_))) {
        return quote!(#errors #item);
    }
    let vis = item.vis.clone();
    let ident = item.sig.ident.clone();
    let kept: Vec<_> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc") || attr.path().is_ident("cfg"))
        .collect();
    let cfgs: Vec<_> = item
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();
    // The body is still checked under another name, so that its own errors show now and the
    // names it uses are not reported as unused; a variadic signature is an error of its own.
    let body = if item.sig.variadic.is_none() {
        item.sig.ident = format_ident!("__worker_{}", ident.unraw(), span = Span::mixed_site());
        quote! {
            #(#cfgs)*
            const _: () = {
                #[allow(dead_code)]
                #item
            };
        }
    } else {
        TokenStream::new()
    };
    let unit_struct = quote_spanned!(ident.span()=> #vis struct #ident;);
    quote! {
        #errors

        #(#kept)*
        #[allow(non_camel_case_types, dead_code)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #unit_struct

        #(#cfgs)*
        impl #krate::IntoWorker for #ident {
            fn into_worker(self) -> #krate::Worker {
                ::core::unreachable!("`#[worker]` reported a compile error")
            }
        }

        #body
    }
}
