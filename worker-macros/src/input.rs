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
                if let Some(err) = argument_error(&typed.ty) {
                    push(err);
                }
                arguments.push(Argument {
                    pat: typed.pat.clone(),
                    ty: typed.ty.clone(),
                });
            }
        }
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output
        && let Some(error) = unsendable_box_error(ty)
    {
        push(syn::Error::new_spanned(
            error,
            "a worker's error must be `Send + Sync`, as its run may resume on another thread: \
             return `Result<(), worker_core::BoxError>` (`Box<dyn std::error::Error + Send + \
             Sync>`) or `anyhow::Result<()>`",
        ));
    }
    if let Some(attr) = item.attrs.iter().find(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "worker")
    }) {
        push(syn::Error::new_spanned(
            attr,
            "`#[worker]` is applied twice to this function: keep one, with all its keys",
        ));
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(arguments),
    }
}

/// Why an argument of type `ty` cannot be extracted, when its form alone says so.
fn argument_error(ty: &Type) -> Option<syn::Error> {
    match ty {
        Type::ImplTrait(_) => Some(syn::Error::new_spanned(
            ty,
            "a worker argument cannot be `impl Trait`: name an extractor type such as `Ctx` or `State<T>`",
        )),
        Type::Reference(reference) => Some(syn::Error::new_spanned(
            ty,
            format!(
                "a worker argument cannot be a reference: each run extracts its arguments as \
                 owned values; take `{}` (`Ctx` and `State<T>` are cheap clones of what they \
                 share)",
                owned(&reference.elem)
            ),
        )),
        _ => None,
    }
}

/// What to take instead of `&ty`: an extractor by value (`Ctx` for `&Ctx`), other data shared
/// through `State` (`State<String>` for `&str`, `State<Vec<T>>` for `&[T]`).
fn owned(ty: &Type) -> String {
    const EXTRACTORS: [&str; 7] = [
        "Ctx",
        "State",
        "Scoped",
        "ScopedMut",
        "Job",
        "Queue",
        "Option",
    ];
    match ty {
        Type::Path(path) if path.path.is_ident("str") => "State<String>".to_owned(),
        Type::Slice(slice) => format!("State<Vec<{}>>", crate::expand::tidy(&slice.elem)),
        Type::Path(path)
            if path
                .path
                .segments
                .last()
                .is_some_and(|last| EXTRACTORS.iter().any(|e| last.ident == e)) =>
        {
            crate::expand::tidy(ty)
        }
        _ => format!("State<{}>", crate::expand::tidy(ty)),
    }
}

/// The `Box<dyn Error>` in a return type `Result<(), Box<dyn Error>>` whose trait object
/// lacks `Send`: rustc's own report names neither the bound nor `BoxError`.
fn unsendable_box_error(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    let Some(GenericArgument::Type(error)) = generics.args.iter().nth(1) else {
        return None;
    };
    let Type::Path(boxed) = error else {
        return None;
    };
    let last = boxed.path.segments.last()?;
    if last.ident != "Box" {
        return None;
    }
    let PathArguments::AngleBracketed(inner) = &last.arguments else {
        return None;
    };
    let Some(GenericArgument::Type(Type::TraitObject(object))) = inner.args.first() else {
        return None;
    };
    let mut is_error = false;
    let mut sendable = false;
    for bound in &object.bounds {
        if let syn::TypeParamBound::Trait(bound) = bound
            && let Some(segment) = bound.path.segments.last()
        {
            is_error |= segment.ident == "Error";
            sendable |= segment.ident == "Send";
        }
    }
    (is_error && !sendable).then_some(error)
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
