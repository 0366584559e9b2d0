//! The run-time parts every kernel image needs and a library cannot choose
//! for it: the panic handler and the global allocator. Both flows use Weir's
//! own, so the image of the WDK flow runs the same code as the image the
//! Linux flow builds and CI tests. The only WDK-flow item is the link of
//! `wdk-sys` below.
//!
//! Panic handler: `wfp_km::bugcheck::on_panic`, bug check `0x57454952`
//! ("WEIR"), parameter 1 = reason (1 = panic), 2 = line, 3/4 = file name
//! pointer/length. windows-drivers-rs' `wdk-panic` 0.5.0 no
//! longer spins: for WDM/KMDF it bug-checks too, with `0x52504E43` ("RPNC")
//! and file pointer, file length, line, column. Weir keeps its own because
//! - the code names Weir in `!analyze -v` and in crash telemetry, where
//!   "RPNC" is shared by every windows-drivers-rs driver on the machine
//!   (the faulting module is still named either way);
//! - with debug assertions wdk-panic first breaks with an inline `int 3`
//!   (`brk #0xF000` on ARM64, `wdk::dbg_break`), an unhandled breakpoint
//!   exception when no kernel debugger is attached: the machine then stops
//!   with a generic exception code instead of the panic's;
//! - one handler in both flows means one layout for docs/debugging.md.
//!
//! Allocator: `wfp_km::pool::PoolAllocator` (`ExAllocatePool2`,
//! `POOL_FLAG_NON_PAGED`, tag `'Weir'`, `ExFreePoolWithTag`). windows-drivers-rs'
//! `wdk-alloc` 0.4.2 makes the same pool call with tag `'rust'`, but ignores
//! `Layout::align()` (its own FIXME): pool blocks are 16-byte aligned on x64,
//! so a type aligned above 16 would get a misaligned block, which is
//! undefined behaviour. Today no such type goes through the global
//! allocator: Weir's two `#[repr(align(64))]` types (`wfp_km::rcu::Rcu`'s
//! reader counters, `weir-events`' ring head and tail) live in `PoolBox`es,
//! which call the aligned pool path directly. So wdk-alloc's gap is a latent
//! risk for Weir, not a present bug: the first `Box`/`Vec` of such a type
//! would be misaligned with nothing to catch it. Weir's allocator
//! over-allocates for those layouts (proptest-checked in `wfp_km::pool`).

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    wfp_km::bugcheck::on_panic(info)
}

#[global_allocator]
static GLOBAL_ALLOCATOR: wfp_km::pool::PoolAllocator = wfp_km::pool::PoolAllocator;

// The WDK flow links with MSVC's link.exe against the prebuilt `core`, not
// with `-Zbuild-std-features=compiler-builtins-mem`: wdk-sys supplies what
// that link needs from the WDK (ntoskrnl.lib for memcpy/memset/memmove/memcmp,
// `_fltused`, the C++ EH personality stubs). Nothing here calls it; the
// `extern crate` keeps rustc from dropping it as unused. The cfg is the one
// that selects the dependency in Cargo.toml.
#[cfg(all(target_env = "msvc", target_feature = "crt-static"))]
extern crate wdk_sys;
