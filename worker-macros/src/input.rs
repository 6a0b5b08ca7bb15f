//! Checking the function `#[worker]` is placed on.

use syn::{FnArg, ItemFn, Pat, Type};

/// One argument: its pattern and its extractor type.
pub(crate) struct Argument {
    pub(crate) pat: Box<Pat>,
    pub(crate) ty: Box<Type>,
}

/// Checks that `item` is a free, non-generic `async fn` and collects its arguments.
pub(crate) fn check(item: &ItemFn) -> syn::Result<Vec<Argument>> {
    let sig = &item.sig;
    let mut errors: Option<syn::Error> = None;
    let mut push = |err: syn::Error| match &mut errors {
        Some(errors) => errors.combine(err),
        None => errors = Some(err),
    };
    if sig.asyncness.is_none() {
        push(syn::Error::new(
            sig.fn_token.span,
            format!(
                "`#[worker]` needs an `async fn`: write `async fn {}`",
                sig.ident
            ),
        ));
    }
    if let Some(constness) = &sig.constness {
        push(syn::Error::new(
            constness.span,
            "a worker cannot be a `const fn`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        push(syn::Error::new(
            unsafety.span,
            "a worker cannot be an `unsafe fn`",
        ));
    }
    if let Some(abi) = &sig.abi {
        push(syn::Error::new_spanned(
            abi,
            "a worker cannot have an `extern` ABI",
        ));
    }
    let generic = "a worker cannot be generic: its arguments are extracted by their concrete types";
    if !sig.generics.params.is_empty() {
        push(syn::Error::new_spanned(&sig.generics, generic));
    } else if let Some(where_clause) = &sig.generics.where_clause {
        push(syn::Error::new_spanned(where_clause, generic));
    }
    if let Some(variadic) = &sig.variadic {
        push(syn::Error::new_spanned(
            variadic,
            "a worker cannot be variadic",
        ));
    }
    let mut arguments = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => push(syn::Error::new_spanned(
                receiver,
                "a worker cannot take `self`: put `#[worker]` on a free function and pass what it needs with `State<T>`",
            )),
            FnArg::Typed(typed) => {
                if let Type::ImplTrait(_) = &*typed.ty {
                    push(syn::Error::new_spanned(
                        &typed.ty,
                        "a worker argument cannot be `impl Trait`: name an extractor type such as `Ctx` or `State<T>`",
                    ));
                }
                arguments.push(Argument {
                    pat: typed.pat.clone(),
                    ty: typed.ty.clone(),
                });
            }
        }
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(arguments),
    }
}
