//! `WORKER__<NAME>__<KEY>` variables: from the process environment or from `config_env`.

use std::collections::HashMap;

use super::Names;
use super::apply::{Override, Raw, push, unknown_key};
use crate::error::Error;

/// A worker's name as it appears in environment variables.
pub(crate) fn env_name(worker: &str) -> String {
    worker
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The process's variables that start with `prefix` (`WORKER__`).
pub(crate) fn process_vars(prefix: &str) -> Result<Vec<(String, String)>, Error> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(prefix)) else {
            continue;
        };
        let value = value.into_string().map_err(|value| {
            Error::overridden(
                None,
                format!("environment variable {name}"),
                Some(format!("{:?}", value.to_string_lossy())),
                "expected valid UTF-8",
            )
        })?;
        vars.push((name.to_owned(), value));
    }
    Ok(vars)
}

pub(crate) fn collect_env<'a>(
    prefix: &str,
    vars: &'a [(String, String)],
    names: &Names<'_>,
    overrides: &mut Vec<Override<'a>>,
) -> Result<(), Error> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut by_env_name: HashMap<String, Vec<(&str, usize)>> = HashMap::new();
    for &(name, index) in &names.names {
        by_env_name
            .entry(env_name(name))
            .or_default()
            .push((name, index));
    }
    for (var, text) in vars {
        let location = format!("environment variable {var}");
        let value = Raw::Env(text);
        let Some((name, key)) = var
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once("__"))
        else {
            return Err(Error::overridden(
                None,
                location,
                Some(value.shown()),
                format!(
                    "expected a variable named {prefix}<NAME>__<KEY>, such as {prefix}SYNC_ORDERS__EVERY"
                ),
            ));
        };
        let worker = match by_env_name.get(name).map(Vec::as_slice) {
            Some(&[(_, index)]) => index,
            Some(several) => {
                let listed: Vec<String> = several.iter().map(|(n, _)| format!("`{n}`")).collect();
                return Err(Error::overridden(
                    None,
                    location,
                    Some(value.shown()),
                    format!(
                        "`{name}` names several workers: {}; rename one of them to override it",
                        listed.join(", ")
                    ),
                ));
            }
            None => {
                return Err(Error::overridden(
                    None,
                    location,
                    Some(value.shown()),
                    format!(
                        "no worker's name gives `{name}`; {}",
                        names.listed(|n| format!("`{n}` ({prefix}{}__<KEY>)", env_name(n)))
                    ),
                ));
            }
        };
        let Some(key) = worker_keys::KEYS
            .iter()
            .find(|k| k.is_overridable() && k.name.to_ascii_uppercase() == key)
        else {
            let worker_name = names
                .names
                .iter()
                .find(|(_, i)| *i == worker)
                .map_or("", |(n, _)| n);
            return Err(unknown_key(
                worker_name,
                location,
                value,
                key,
                str::to_ascii_uppercase,
            ));
        };
        push(
            overrides,
            Override {
                worker,
                key,
                value,
                location,
                source: 1,
            },
        )?;
    }
    Ok(())
}
