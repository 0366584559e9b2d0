//! Non-paged, non-executable pool: the global allocator and a fallible box.
//!
//! `ExAllocatePool2` with `POOL_FLAG_NON_PAGED` returns NX memory, usable at
//! IRQL <= DISPATCH_LEVEL. Pool blocks are 16-byte aligned on x64; larger
//! alignments are served by over-allocating and keeping the block's start in
//! a header just below the aligned pointer.

use crate::status::{NtStatus, Result};
use core::alloc::{GlobalAlloc, Layout};
use core::mem::{align_of, size_of};
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use wfp_km_sys::ntos::POOL_FLAG_NON_PAGED;

/// Alignment every pool block already has on x64.
pub const POOL_ALIGNMENT: usize = 16;

/// Pool tag used for all of Weir's allocations: `'Weir'` as WinDbg's
/// `!poolused` shows it (the tag is stored little-endian).
pub const WEIR_POOL_TAG: u32 = u32::from_le_bytes(*b"Weir");

/// The raw pool interface, so the alignment logic can be tested on the host.
pub trait RawPool {
    /// Allocates `size` bytes of zeroed non-paged memory, or null.
    fn alloc(&self, size: usize) -> *mut u8;
    /// Frees a block returned by `alloc`.
    ///
    /// # Safety
    /// `block` came from `alloc` on this pool and is not used afterwards.
    unsafe fn free(&self, block: *mut u8);
}

/// The kernel's pool.
#[derive(Clone, Copy, Default)]
pub struct KernelPool;

impl RawPool for KernelPool {
    fn alloc(&self, size: usize) -> *mut u8 {
        // SAFETY: ExAllocatePool2 may be called at IRQL <= DISPATCH_LEVEL with
        // non-paged flags; it returns null on failure and never faults on a
        // size. POOL_FLAG_NON_PAGED without POOL_FLAG_UNINITIALIZED zeroes the
        // block.
        unsafe {
            windows_sys::Wdk::System::SystemServices::ExAllocatePool2(
                POOL_FLAG_NON_PAGED,
                size,
                WEIR_POOL_TAG,
            )
            .cast()
        }
    }

    unsafe fn free(&self, block: *mut u8) {
        // SAFETY: the caller guarantees `block` came from ExAllocatePool2 with
        // our tag and is no longer used.
        unsafe {
            windows_sys::Wdk::System::SystemServices::ExFreePoolWithTag(
                block.cast(),
                WEIR_POOL_TAG,
            );
        }
    }
}

/// Allocates `layout` from `pool`, honouring any power-of-two alignment.
///
/// Returns null on failure or overflow.
pub fn alloc_aligned<P: RawPool>(pool: &P, layout: Layout) -> *mut u8 {
    let size = layout.size().max(1);
    if layout.align() <= POOL_ALIGNMENT {
        return pool.alloc(size);
    }
    // Room for the alignment slack plus a header holding the block start.
    let Some(total) = size
        .checked_add(layout.align())
        .and_then(|n| n.checked_add(size_of::<usize>()))
    else {
        return ptr::null_mut();
    };
    let block = pool.alloc(total);
    if block.is_null() {
        return block;
    }
    let first = (block as usize).wrapping_add(size_of::<usize>());
    // align is a power of two, so this rounds `first` up to it.
    let aligned = first.wrapping_add(layout.align() - 1) & !(layout.align() - 1);
    let offset = aligned.wrapping_sub(block as usize);
    // SAFETY: offset >= size_of::<usize>() and offset + size <= total, so both
    // the header (just below the aligned pointer) and the user area lie inside
    // the block. The header slot is usize-aligned because `aligned` is aligned
    // to more than 16 and the header is 8 bytes below it.
    unsafe {
        let user = block.add(offset);
        user.cast::<usize>().sub(1).write(block as usize);
        user
    }
}

/// Frees memory from [`alloc_aligned`] with the same `layout`.
///
/// # Safety
/// `ptr` was returned by `alloc_aligned(pool, layout)` and is not used again.
pub unsafe fn free_aligned<P: RawPool>(pool: &P, ptr: *mut u8, layout: Layout) {
    if layout.align() <= POOL_ALIGNMENT {
        // SAFETY: small alignments are served directly by the pool.
        unsafe { pool.free(ptr) };
    } else {
        // SAFETY: alloc_aligned stored the block start in the usize just
        // below `ptr`.
        unsafe {
            let block = ptr.cast::<usize>().sub(1).read() as *mut u8;
            pool.free(block);
        }
    }
}

/// `#[global_allocator]` over the non-paged NX pool.
pub struct PoolAllocator;

// SAFETY: alloc_aligned returns null or a block of at least `layout.size()`
// bytes aligned to `layout.align()`; dealloc frees exactly such blocks.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc_aligned(&KernelPool, layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract: ptr came from `alloc` with `layout`.
        unsafe { free_aligned(&KernelPool, ptr, layout) }
    }
}

/// An owned `T` in non-paged pool; allocation failure is an error, not a
/// panic.
///
/// Invariant: `ptr` points to an initialised `T` allocated by
/// `alloc_aligned(&KernelPool, Layout::new::<T>())` and owned by this box.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
}

// SAFETY: PoolBox owns its T like Box does.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: shared access only hands out &T.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Moves `value` into pool memory. On failure `value` is dropped (so any
    /// resources it owns are released) and `STATUS_INSUFFICIENT_RESOURCES`
    /// is returned.
    pub fn try_new(value: T) -> Result<Self> {
        let layout = Layout::new::<T>();
        let raw = alloc_aligned(&KernelPool, layout).cast::<T>();
        let Some(ptr) = NonNull::new(raw) else {
            drop(value);
            return Err(NtStatus::INSUFFICIENT_RESOURCES);
        };
        // SAFETY: `ptr` is a fresh, suitably aligned allocation for a T.
        unsafe { ptr.as_ptr().write(value) };
        Ok(Self { ptr })
    }

    /// Gives up ownership; [`PoolBox::from_raw`] takes it back.
    pub fn into_raw(this: Self) -> *mut T {
        let raw = this.ptr.as_ptr();
        core::mem::forget(this);
        raw
    }

    /// Re-owns a pointer from [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `raw` came from `into_raw` and is not owned by anything else.
    pub unsafe fn from_raw(raw: NonNull<T>) -> Self {
        Self { ptr: raw }
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: invariant: ptr is a valid, initialised, owned T.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: invariant, and &mut self gives exclusive access.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: invariant: we own an initialised T allocated with this
        // layout; it is dropped exactly once and then freed.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            free_aligned(&KernelPool, self.ptr.as_ptr().cast(), Layout::new::<T>());
        }
    }
}

const _: () = assert!(align_of::<usize>() <= POOL_ALIGNMENT);

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A host pool that mimics the kernel's 16-byte alignment guarantee and
    /// records live blocks.
    #[derive(Default)]
    struct HostPool {
        live: RefCell<HashMap<usize, std::alloc::Layout>>,
    }

    impl RawPool for HostPool {
        fn alloc(&self, size: usize) -> *mut u8 {
            let Ok(layout) = std::alloc::Layout::from_size_align(size, POOL_ALIGNMENT) else {
                return ptr::null_mut();
            };
            // SAFETY: size >= 1 (alloc_aligned never asks for 0).
            let p = unsafe { std::alloc::alloc_zeroed(layout) };
            self.live.borrow_mut().insert(p as usize, layout);
            p
        }
        unsafe fn free(&self, block: *mut u8) {
            let layout = self.live.borrow_mut().remove(&(block as usize));
            let layout = layout.unwrap_or_else(|| panic!("free of unknown block {block:p}"));
            // SAFETY: block came from alloc with this layout.
            unsafe { std::alloc::dealloc(block, layout) };
        }
    }

    proptest::proptest! {
        #[test]
        fn every_alignment_is_honoured_and_freed(size in 0usize..5000, align_log in 0u32..13) {
            let pool = HostPool::default();
            let layout = Layout::from_size_align(size, 1usize << align_log).unwrap();
            let p = alloc_aligned(&pool, layout);
            proptest::prop_assert!(!p.is_null());
            proptest::prop_assert_eq!(p as usize % layout.align(), 0);
            // The whole user area is writable inside the block.
            // SAFETY: p points to at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0xA5, size) };
            // SAFETY: p came from alloc_aligned with layout.
            unsafe { free_aligned(&pool, p, layout) };
            proptest::prop_assert!(pool.live.borrow().is_empty());
        }
    }

    struct FailingPool;
    impl RawPool for FailingPool {
        fn alloc(&self, _size: usize) -> *mut u8 {
            ptr::null_mut()
        }
        unsafe fn free(&self, _block: *mut u8) {
            panic!("nothing was allocated");
        }
    }

    #[test]
    fn pool_exhaustion_returns_null_for_small_and_large_alignments() {
        for align in [1usize, 16, 64, 4096] {
            let layout = Layout::from_size_align(100, align).unwrap();
            assert!(alloc_aligned(&FailingPool, layout).is_null(), "align {align}");
        }
    }

    #[test]
    fn pool_tag_reads_weir_in_windbg() {
        assert_eq!(WEIR_POOL_TAG.to_le_bytes(), *b"Weir");
    }
}
