//! `/metrics` under load: concurrent scrapes share one rendering of the page, made on the
//! runtime's blocking pool, so N scrapes at once cost one page of memory and one rendering, and
//! the listener's thread stays free for probes meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use crate::observe::board::Board;

/// The rendering in progress, if any.
#[derive(Default)]
pub(crate) struct Scrapes {
    current: Mutex<Option<Rendering>>,
}

impl std::fmt::Debug for Scrapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrapes").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Rendering {
    page: Shared<BoxFuture<'static, Bytes>>,
    /// The page is rendered: a scrape that comes now wants a fresh one.
    done: Arc<AtomicBool>,
}

/// The page `/metrics` serves: the rendering in progress, or a new one.
pub(crate) async fn page(board: &Arc<Board>) -> Bytes {
    let rendering = {
        let mut current = board
            .scrapes
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some(rendering) if !rendering.done.load(Ordering::Acquire) => rendering.clone(),
            _ => {
                let rendering = start(board.clone());
                *current = Some(rendering.clone());
                rendering
            }
        }
    };
    let page = rendering.page.clone().await;
    let mut current = board
        .scrapes
        .current
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if current
        .as_ref()
        .is_some_and(|c| Shared::ptr_eq(&c.page, &rendering.page))
    {
        // Nobody holds the page for a later scrape.
        *current = None;
    }
    page
}

fn start(board: Arc<Board>) -> Rendering {
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let render = move || {
        let page = Bytes::from(board.render_metrics(board.now()));
        finished.store(true, Ordering::Release);
        page
    };
    let page = async move {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.spawn_blocking(render).await.unwrap_or_default(),
            Err(_) => render(),
        }
    }
    .boxed()
    .shared();
    Rendering { page, done }
}
