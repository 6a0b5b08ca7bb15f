//! Checking the function `#[worker]` is placed on.

use syn::spanned::Spanned as _;
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, Type};

use crate::args::Args;

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

/// The payload `T` of a `Job<T>` argument, as written.
fn job_payload(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Job" {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    match generics.args.first() {
        Some(GenericArgument::Type(payload)) if generics.args.len() == 1 => Some(payload),
        _ => None,
    }
}

/// A queue worker's payload type, from its one `Job<T>` argument; `None` for a worker on a
/// schedule, which must take no `Job`.
pub(crate) fn payload(
    args: &Args,
    item: &ItemFn,
    arguments: &[Argument],
) -> syn::Result<Option<Type>> {
    let jobs: Vec<(&Argument, &Type)> = arguments
        .iter()
        .filter_map(|a| job_payload(&a.ty).map(|payload| (a, payload)))
        .collect();
    let Some(queue) = args.queue() else {
        return match jobs.first() {
            Some((argument, _)) => Err(syn::Error::new(
                argument.ty.span(),
                "`Job<T>` is the job of a queue worker, and this worker runs on a schedule: \
                 give it `queue = \"name\"` instead of its schedule, or take the job out",
            )),
            None => Ok(None),
        };
    };
    match jobs.as_slice() {
        [(_, payload)] => Ok(Some((*payload).clone())),
        [] => Err(syn::Error::new(
            item.sig
                .inputs
                .span()
                .join(item.sig.ident.span())
                .unwrap_or(item.sig.ident.span()),
            format!(
                "a queue worker takes its job as an argument: add `job: Job<T>` to `{}`, where \
                 `T` is the payload sent to the queue `{queue}`",
                item.sig.ident
            ),
        )),
        [_, (second, _), ..] => Err(syn::Error::new(
            second.ty.span(),
            "a queue worker takes one `Job<T>` argument: each attempt runs one job",
        )),
    }
}
