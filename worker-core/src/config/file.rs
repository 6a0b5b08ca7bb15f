//! The configuration file: read with care (a regular file of bounded size), then one override
//! per key of each `[workers.<name>]` table.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use serde::Deserialize;

use super::Names;
use super::apply::{Override, Raw, push, unknown_key};
use crate::error::Error;

/// The file's shape; values are checked key by key against [`KEYS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    #[serde(default)]
    workers: BTreeMap<String, toml::Table>,
}

/// The largest configuration file read: 1 MiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

pub(crate) fn read_file(path: &Path, label: &str) -> Result<File, Error> {
    let text = read_regular(path).map_err(|(message, source)| match source {
        Some(source) => Error::unreadable(label.to_owned(), message, source),
        None => Error::overridden(None, label.to_owned(), None, message),
    })?;
    toml::from_str(&text).map_err(|err| {
        let message = format!(
            "cannot parse the configuration file: {}",
            err.to_string().trim_end()
        );
        Error::overridden(None, label.to_owned(), None, message)
    })
}

/// The text of the regular file at `path`, of at most [`MAX_FILE_BYTES`]. A FIFO, a device
/// (`/dev/zero`) or a directory is refused without reading it, so a build never blocks on the
/// file nor reads without end.
/// The error is a message and, when reading failed, the I/O error.
fn read_regular(path: &Path) -> Result<String, (String, Option<std::io::Error>)> {
    let cannot = |err: std::io::Error| ("cannot read the configuration file".to_owned(), Some(err));
    let not_regular = || {
        (
            "cannot read the configuration file: it is not a regular file (a FIFO, a device or \
             a directory); expected a TOML file"
                .to_owned(),
            None,
        )
    };
    // Checked before opening: opening a FIFO for reading waits for a writer.
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Should the path have become a FIFO since, opening it does not wait.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err((
            format!(
                "the configuration file is larger than {} KiB; expected a TOML file of workers' \
                 settings",
                MAX_FILE_BYTES >> 10
            ),
            None,
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        (
            "cannot read the configuration file: it is not valid UTF-8".to_owned(),
            None,
        )
    })
}

/// A key of a TOML table, quoted when it is not a bare key.
pub(crate) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

pub(crate) fn collect_file<'a>(
    file: &'a File,
    label: &str,
    names: &Names<'_>,
    overrides: &mut Vec<Override<'a>>,
) -> Result<(), Error> {
    for (name, table) in &file.workers {
        let table_path = format!("workers.{}", toml_key(name));
        let Some(worker) = names.find(name) else {
            return Err(Error::overridden(
                None,
                format!("{label}: [{table_path}]"),
                None,
                format!(
                    "no worker is named `{name}`; {}",
                    names.listed(|n| format!("`{n}`"))
                ),
            ));
        };
        for (key, value) in table {
            let location = format!("{label}: {table_path}.{}", toml_key(key));
            let value = Raw::Toml(value);
            let Some(key) = worker_keys::key(key).filter(|k| k.is_overridable()) else {
                return Err(unknown_key(name, location, value, key, ToOwned::to_owned));
            };
            push(
                overrides,
                Override {
                    worker,
                    key,
                    value,
                    location,
                    source: 0,
                },
            )?;
        }
    }
    Ok(())
}
