//! Asking the CPU for a worker's memory as soon as its loop is woken.
//!
//! A tick touches a dozen cache lines of the worker's own: its loop's and its run's state, its
//! control signals, its metric block, the reference count of the run's context. With a thousand
//! workers, those lines have left the core's caches in the ten milliseconds between two ticks,
//! and each first touch waited for memory in turn. Asked for together when the loop is polled,
//! they load side by side: that cut the CPU time of an empty tick at 1000 workers by about 15 %
//! (`benches/overhead.rs`). A prefetch is a hint; where it is not available, this does nothing.

use std::future::Future;
use std::mem::size_of_val;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::status::Tracked;

pin_project! {
    /// A worker's loop, which asks for the memory a tick touches each time it is polled,
    /// before polling: its own, the worker's record, and the allocation its runs' context
    /// shares.
    pub(crate) struct Warm<F> {
        #[pin]
        inner: F,
        worker: Arc<Tracked>,
        context: Region,
    }
}

impl<F> Warm<F> {
    pub(crate) fn new(inner: F, worker: Arc<Tracked>, context: Region) -> Self {
        Self {
            inner,
            worker,
            context,
        }
    }
}

impl<F: Future> Future for Warm<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Its own lines first: their addresses are known without reading memory.
        Region::of(&*self).fetch();
        let this = self.project();
        this.context.fetch();
        this.worker.prefetch();
        this.inner.poll(cx)
    }
}

/// Cache lines, from the one holding `at`, covering `bytes` bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    at: usize,
    bytes: usize,
}

impl Region {
    /// The memory of `value` itself (not what it points to).
    pub(crate) fn of<T: ?Sized>(value: &T) -> Self {
        Self::prefix(value, size_of_val(value))
    }

    /// The first `bytes` bytes of `value`.
    pub(crate) fn prefix<T: ?Sized>(value: &T, bytes: usize) -> Self {
        Self {
            at: std::ptr::from_ref(value).cast::<u8>() as usize,
            bytes,
        }
    }

    /// The allocation of `arc`: its value, and the reference counts its clones and drops
    /// update, which `std` keeps right before the value. (A hint: were that to change, it would
    /// only cost the hint.)
    pub(crate) fn counted<T>(arc: &Arc<T>) -> Self {
        let counts = 2 * size_of::<usize>();
        Self {
            at: (Arc::as_ptr(arc).cast::<u8>() as usize).wrapping_sub(counts),
            bytes: counts + size_of::<T>(),
        }
    }

    /// Asks for every line of the region.
    pub(crate) fn fetch(self) {
        let mut line = self.at & !(LINE - 1);
        while line < self.at + self.bytes {
            fetch_line(line);
            line += LINE;
        }
    }
}

const LINE: usize = 64;

/// Asks the CPU to start loading the cache line at `addr`: a hint, which never faults.
#[inline]
fn fetch_line(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    #[allow(
        unsafe_code,
        reason = "a prefetch is a hint: it reads nothing and never faults"
    )]
    // SAFETY: `prefetcht0` has no memory effects and does not fault, whatever the address; SSE,
    // which it needs, is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
