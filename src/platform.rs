//! The run-time differences between the two build flows, and nothing else.
//!
//! - Both flows: a Rust panic bug-checks with Weir's code
//!   (`wfp_km::bugcheck::on_panic`). windows-drivers-rs' `wdk-panic` handler
//!   spins forever, which at DISPATCH_LEVEL hangs a CPU until the watchdog
//!   fires with a stop code that does not name Weir; so the WDK flow does not
//!   use it.
//! - Linux flow (default features, `cargo xtask build`): the allocator is
//!   `wfp-km`'s non-paged NX pool allocator, honouring alignment.
//! - WDK flow (`--features wdk`, `cargo make` in an eWDK prompt): the
//!   allocator is windows-drivers-rs' `wdk-alloc`, as in Microsoft's Rust
//!   driver samples. Link settings for that flow come from `wdk-build` in
//!   build.rs.

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    wfp_km::bugcheck::on_panic(info)
}

#[cfg(not(feature = "wdk"))]
#[global_allocator]
static GLOBAL_ALLOCATOR: wfp_km::pool::PoolAllocator = wfp_km::pool::PoolAllocator;

#[cfg(feature = "wdk")]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;
