//! Messages as they are kept and shown, and log lines written off a thread that must not block.

/// The longest error message, panic message or reason shown over HTTP (and kept in a worker's
/// history), in bytes; a longer one is cut at a character boundary and ends with `…`.
pub(crate) const MAX_MESSAGE_BYTES: usize = 1024;

/// Logs off the listener's thread, on the runtime's blocking pool when there is one: a log
/// sink that blocks (a full pipe) must not stop the listener, which answers every request on
/// one thread.
pub(crate) fn log_aside(log: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(log)),
        Err(_) => log(),
    }
}

/// `text` cut to at most [`MAX_MESSAGE_BYTES`] bytes, at a character boundary, ending with `…`
/// when it was cut.
pub(crate) fn truncated(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text.into();
    }
    let ellipsis = '…';
    let mut end = MAX_MESSAGE_BYTES - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end]).into()
}
