//! The process allocator: mimalloc, asking the kernel for huge pages under large blocks.
//!
//! The store network's big arrays (18 million stock cells, the carrier trees, the SKU lists:
//! about 1.3 GiB on 180,000 stores) are read at random by every route. On 4 KiB pages nearly every
//! one of those reads also misses the TLB and walks the page table. Linux maps transparent huge
//! pages (2 MiB) only where a program asks for them (`madvise`, the usual setting of
//! `/sys/kernel/mm/transparent_hugepage/enabled`), and mimalloc asks only for memory it commits
//! eagerly, which its lazily committed arenas are not. So this allocator advises `MADV_HUGEPAGE`
//! on every block of 2 MiB or more as it hands it out, before anything touches it: the block's
//! first writes then fault in whole huge pages. Growing such a block copies it into a new advised
//! block (as `GlobalAlloc`'s default `realloc` does), because mimalloc's own `realloc` would touch
//! the new block before it could be advised.
//!
//! Smaller blocks and every free go to mimalloc unchanged. On systems without transparent huge
//! pages the advice fails and nothing else changes.
//!
//! A batch command (a plan, a replay, a simulation) builds and drops gigabytes of short-lived
//! arrays. mimalloc hands freed pages back to the kernel after a second, so the next large
//! array faults them in (and the kernel zeroes them) again: on the 180,000-store capacity-bound
//! plan that was 134,000 page faults and 11 s of system time. [`keep_freed_memory`] tells it to
//! keep them for reuse for the rest of the process (2,800 faults, 4 s); a server, whose memory
//! should shrink back after a burst, does not call it.

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};

/// See the module docs. Used by the `omniroute` binary and the benchmarks that measure it.
pub struct Allocator;

/// Blocks at least this large are advised; also the huge page size.
const HUGE: usize = 2 << 20;

/// Advises huge pages for the whole 2 MiB pages inside `[ptr, ptr + size)`.
fn advise(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if size >= HUGE && !ptr.is_null() {
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + size) & !(HUGE - 1);
        if end > start {
            // SAFETY: the range lies inside a block this allocator just handed out, and
            // MADV_HUGEPAGE changes how its pages are backed, never what they hold. A failure
            // (huge pages disabled) leaves the block as it was.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, size);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the crate names only some options).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the process for reuse instead of going back to the kernel (see the
/// module docs). Call it before any other thread starts: mimalloc's options are not thread-safe.
pub fn keep_freed_memory() {
    // SAFETY: sets one option of the process's allocator; the caller runs before other threads.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

// SAFETY: every block comes from mimalloc with the caller's layout and goes back to it with the
// same layout; `realloc` of a large block copies `min(old, new)` bytes into a block allocated
// for the new size, as the trait's default does.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { MiMalloc.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size < HUGE {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees that `new_size`, rounded up to `layout.align()`, does not
        // overflow, so this layout is valid; `ptr` holds `layout.size()` initialised bytes.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let p = self.alloc(new_layout);
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_named() {
        // mimalloc 3's purge delay defaults to 1,000 ms; the options beside it (a deprecated
        // eager-commit delay, the NUMA node count) default to 1 and 0. A build whose option
        // numbers moved fails here instead of setting another option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads one option of the allocator.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
        }
    }

    /// Large blocks, grown and shrunk, keep their contents and alignment (the large `realloc`
    /// copies by hand); small ones go through mimalloc's own paths.
    #[test]
    fn blocks_keep_their_bytes_through_realloc() {
        let a = Allocator;
        let pattern = |i: usize| (i.wrapping_mul(31) ^ (i >> 9)) as u8;
        for align in [8, 64, 4096] {
            // 3 MiB -> 7 MiB (copied by hand) -> 1 MiB (mimalloc) -> 5 MiB (copied by hand).
            let sizes = [3 << 20, 7 << 20, 1 << 20, 5 << 20];
            let mut layout = Layout::from_size_align(sizes[0], align).unwrap();
            // SAFETY: non-zero sizes, valid layouts, every block freed with its own layout.
            unsafe {
                let mut p = a.alloc(layout);
                assert!(!p.is_null() && (p as usize).is_multiple_of(align));
                for i in 0..layout.size() {
                    *p.add(i) = pattern(i);
                }
                for &size in &sizes[1..] {
                    let kept = layout.size().min(size);
                    p = a.realloc(p, layout, size);
                    assert!(!p.is_null() && (p as usize).is_multiple_of(align));
                    layout = Layout::from_size_align(size, align).unwrap();
                    assert!((0..kept).all(|i| *p.add(i) == pattern(i)), "{kept} bytes kept at {size}");
                    for i in kept..size {
                        *p.add(i) = pattern(i);
                    }
                }
                a.dealloc(p, layout);
                let z = a.alloc_zeroed(Layout::from_size_align(3 << 20, align).unwrap());
                assert!((0..3 << 20).all(|i| *z.add(i) == 0));
                a.dealloc(z, Layout::from_size_align(3 << 20, align).unwrap());
            }
        }
    }
}
