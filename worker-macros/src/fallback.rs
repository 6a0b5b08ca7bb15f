//! What `#[worker]` emits when the attribute or the function is wrong: the errors, plus a stand-in
//! for the worker so the user's `.worker(name)` call adds no second, confusing error.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, Visibility};

pub(crate) fn expand(errors: &syn::Error, vis: &Visibility, ident: &Ident) -> TokenStream {
    let errors = errors.to_compile_error();
    quote! {
        #errors

        #[allow(non_camel_case_types, dead_code)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #ident;

        impl ::worker_core::IntoWorker for #ident {
            fn into_worker(self) -> ::worker_core::Worker {
                ::core::unreachable!("`#[worker]` reported a compile error")
            }
        }
    }
}
