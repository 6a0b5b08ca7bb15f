//! Expanding a checked `#[worker]` function.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{Attribute, Ident, ItemFn, ReturnType, Type};

use worker_keys::{Kind, Value};

use crate::args::Args;
use crate::input::Argument;

/// Replaces the function by a unit struct of the same name that
/// - implements `IntoWorker`, so `.worker(name)` registers it through `Worker::builder`, and
/// - dereferences to a function pointer, so `name(args..).await` still calls the body in tests.
pub(crate) fn expand(
    args: &Args,
    item: ItemFn,
    arguments: &[Argument],
    payload: Option<&Type>,
) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = item;
    let ident = sig.ident.clone();
    let name = args
        .name()
        .map_or_else(|| ident.unraw().to_string(), str::to_owned);
    let (docs, cfgs, others) = split_attributes(attrs);

    let krate = args.krate();
    let inner = format_ident!("__worker_{}", ident.unraw(), span = Span::mixed_site());
    sig.ident = inner.clone();
    let output: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };

    let config = configuration(args);
    let values: Vec<_> = (0..arguments.len())
        .map(|i| format_ident!("__worker_arg{}", i, span = Span::mixed_site()))
        .collect();
    let types: Vec<_> = arguments.iter().map(|argument| &argument.ty).collect();
    let builder = Ident::new("__worker_builder", Span::mixed_site());
    let requirements = arguments.iter().enumerate().map(|(i, argument)| {
        let ty = &argument.ty;
        let label = format!(
            "#{} (`{}: {}`)",
            i + 1,
            tidy(&argument.pat),
            tidy(&argument.ty)
        );
        // `Into::into`, not `format!`: a pattern such as `Config { .. }` holds braces.
        quote_spanned! {ty.span()=>
            let #builder = #krate::__private::require::<#ty>(
                #builder,
                ::core::convert::Into::into(#label),
            );
        }
    });
    let queue = queue(args, payload, &builder);
    let scope = Ident::new("__worker_scope", Span::mixed_site());
    let body = Ident::new("__worker_body", Span::mixed_site());
    // Spanned at each argument's type, so a type that is not an extractor is reported there,
    // with the `#[diagnostic::on_unimplemented]` note of `FromScope`.
    let extractions = arguments.iter().zip(&values).map(|(argument, value)| {
        let ty = &argument.ty;
        quote_spanned! {ty.span()=>
            let #value = <#ty as #krate::FromScope>::from_scope(&#scope).await?;
        }
    });
    // `<#output as IntoRunResult>` puts the bound on the user's return type, so a bad one is
    // reported at the type rather than at the attribute.
    let result = quote_spanned! {output.span()=>
        <#output as #krate::IntoRunResult>::into_run_result(#inner(#(#values),*).await)
    };
    let boxed = quote_spanned! {ident.span()=>
        #krate::__private::Box::pin(#inner(#(#values),*))
    };
    // Spanned at the name, so lints on the struct (`missing_docs`, ...) point at the function.
    let unit_struct = quote_spanned!(ident.span()=> #vis struct #ident;);
    let call_type = quote! {
        fn(#(#types),*) -> #krate::__private::Pin<
            #krate::__private::Box<
                dyn #krate::__private::Future<Output = #output> + ::core::marker::Send
            >
        >
    };

    // The rest is written out by the struct's attribute: in an `impl` block, where a struct
    // cannot be, the struct is the one error, at the function's name.
    quote! {
        #(#cfgs)*
        #(#docs)*
        #[#krate::__private::items(
        #(#cfgs)*
        const _: () = {
            #(#others)*
            #[allow(
                clippy::unused_async,
                clippy::needless_pass_by_value,
                reason = "a worker is an async fn whose arguments are extracted by value"
            )]
            #sig #block

            impl #krate::IntoWorker for #ident {
                fn into_worker(self) -> #krate::Worker {
                    // Checked before the requirements below, so that an argument that is not an
                    // extractor is reported by the extraction, not by a hidden builder method.
                    let #body = |#scope: #krate::Scope| async move {
                        #(#extractions)*
                        #result
                    };
                    let #builder = #krate::Worker::builder(#name) #config;
                    #queue
                    #(#requirements)*
                    #krate::__private::finish(#builder, #body)
                }
            }

            impl #krate::__private::Deref for #ident {
                type Target = #call_type;

                fn deref(&self) -> &Self::Target {
                    static CALL: #call_type = |#(#values),*| #boxed;
                    &CALL
                }
            }
        };
        )]
        #[allow(non_camel_case_types, reason = "`#[worker]` keeps the function's name for `.worker(name)`")]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #unit_struct
    }
}

/// A queue worker's payload is its `Job<T>`'s; its dead jobs show its `Debug` when it has one.
/// A durable queue's payload must also be stored, which `__private::durable_queue` requires.
fn queue(args: &Args, payload: Option<&Type>, builder: &Ident) -> TokenStream {
    let krate = args.krate();
    let declare = if args.is_durable() {
        format_ident!("durable_queue")
    } else {
        format_ident!("queue")
    };
    match (args.queue(), payload) {
        (Some(queue), Some(payload)) => quote_spanned! {payload.span()=>
            let #builder = #krate::__private::#declare::<#payload>(#builder, #queue, {
                #[allow(unused_imports)]
                use #krate::__private::{ViaDebug as _, ViaNothing as _};
                (&#krate::__private::Payload::<#payload>(::core::marker::PhantomData))
                    .describer()
            });
        },
        _ => TokenStream::new(),
    }
}

/// The builder calls for the keys that were given, in their order (each key is the builder
/// method of the same name); the others keep the builder's defaults, so they live in one place.
fn configuration(args: &Args) -> TokenStream {
    let krate = args.krate();
    let mut calls = TokenStream::new();
    // `name` is the builder's argument, not a method; `queue` and `durable` need the payload
    // type.
    for setting in args
        .settings()
        .iter()
        .filter(|setting| !matches!(setting.key.name, "name" | "queue" | "durable"))
    {
        let method = format_ident!("{}", setting.key.name);
        let variant = |ty: &str, variant: &str, arg: Option<u32>| {
            let ty = format_ident!("{}", ty);
            let variant = format_ident!("{}", variant);
            let arg = arg.map(|arg| quote!((#arg)));
            quote!(#krate::#ty::#variant #arg)
        };
        let value = match &setting.value {
            Value::Duration(duration) => {
                let secs = duration.as_secs();
                let nanos = duration.subsec_nanos();
                quote!(#krate::__private::Duration::new(#secs, #nanos))
            }
            Value::Count(number) => quote!(#number),
            // Checked to be in `(0, 1]`, so finite, as `f64_unsuffixed` requires.
            Value::Ratio(ratio) => Literal::f64_unsuffixed(*ratio).into_token_stream(),
            Value::Bool(value) => quote!(#value),
            Value::Choice(option) => {
                let choice = match setting.key.kind {
                    Kind::Choice(choice) => choice,
                    _ => &worker_keys::OVERLAP,
                };
                let name = choice
                    .options
                    .iter()
                    .find(|(o, _)| o == option)
                    .map_or("", |(_, v)| *v);
                variant(choice.ty, name, None)
            }
            Value::Allow(n) => variant(worker_keys::OVERLAP.ty, "Allow", Some(*n)),
            Value::Text(text) => quote!(#text),
            // `Flag`: `.once()`.
            _ => TokenStream::new(),
        };
        calls.extend(quote!(.#method(#value)));
    }
    calls
}

/// Doc comments go on the struct users see, `#[cfg]`s on everything, the rest on the function.
fn split_attributes(attrs: Vec<Attribute>) -> (Vec<Attribute>, Vec<Attribute>, Vec<Attribute>) {
    let mut docs = Vec::new();
    let mut cfgs = Vec::new();
    let mut others = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr);
        } else if attr.path().is_ident("cfg") {
            cfgs.push(attr);
        } else {
            others.push(attr);
        }
    }
    (docs, cfgs, others)
}

/// Tokens as a person would write them, for error messages.
pub(crate) fn tidy(tokens: &impl ToTokens) -> String {
    tokens
        .to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" :: ", "::")
        .replace(" ,", ",")
        .replace("& ", "&")
}
