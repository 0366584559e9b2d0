//! The run-time differences between the two build flows, and nothing else.
//!
//! - Linux flow (default features, `cargo xtask build`): the allocator and the
//!   panic handler come from `wfp-km` — non-paged NX pool honouring alignment,
//!   and a bug check with Weir's code.
//! - WDK flow (`--features wdk`, `cargo make` in an eWDK prompt): the
//!   windows-drivers-rs crates provide them, as in Microsoft's Rust driver
//!   samples. Link settings for that flow come from `wdk-build` in build.rs.

#[cfg(not(feature = "wdk"))]
mod linux_flow {
    #[global_allocator]
    static GLOBAL_ALLOCATOR: wfp_km::pool::PoolAllocator = wfp_km::pool::PoolAllocator;

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        wfp_km::bugcheck::on_panic(info)
    }

}

#[cfg(feature = "wdk")]
mod wdk_flow {
    extern crate wdk_panic;

    #[global_allocator]
    static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;
}
