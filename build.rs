//! Link configuration for the two build flows; the host decides which.
//!
//! - Windows host: the WDK flow (`cargo make`, Makefile.toml).
//!   windows-drivers-rs' `wdk-build` configures the link exactly as in
//!   Microsoft's Rust driver samples, from `[package.metadata.wdk]` and the
//!   installed WDK. It fails with its own message when `crt-static` is off
//!   (see .cargo/config.toml).
//! - Any other host: the Linux flow (`cargo xtask build`), the link settings
//!   of a WDM kernel image passed to lld in link.exe mode. Only applied when
//!   building for a Windows target; host builds (unit tests) need nothing.
//!
//! `cfg(windows)` in a build script is the host's: the script runs where it
//! is built. wdk-build is a build dependency only on Windows hosts
//! (Cargo.toml), as it refuses to compile anywhere else.

fn main() {
    #[cfg(windows)]
    {
        if let Err(err) = wdk_build::configure_wdk_binary_build() {
            println!("cargo::error=wdk-build could not configure the WDK build: {err}");
        }
    }

    #[cfg(not(windows))]
    linux_flow();
}

#[cfg(not(windows))]
fn linux_flow() {
    // Only in this flow: wdk-build decides itself what reruns its part.
    println!("cargo::rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "windows" || target_env != "msvc" {
        return;
    }
    let args = [
        // A kernel-mode image: native subsystem, DriverEntry as entry point,
        // no CRT or default libraries.
        "/DRIVER",
        "/SUBSYSTEM:NATIVE,10.00",
        "/ENTRY:DriverEntry",
        "/NODEFAULTLIB",
        // Image checksum (the loader verifies it for drivers).
        "/RELEASE",
        "/DYNAMICBASE",
        "/NXCOMPAT",
        "/OPT:REF,ICF",
        // Full PDB; the CodeView record names only `weir.pdb`, so WinDbg finds
        // it through the symbol path wherever the package is copied.
        "/DEBUG:FULL",
        "/PDBALTPATH:%_PDB%",
        // lld does not give sections the attributes MSVC's /DRIVER does:
        // everything resident (non-paged), code execute+read only, data never
        // executable, and INIT discardable.
        "/SECTION:.text,ERP",
        "/SECTION:.rdata,RP",
        "/SECTION:.pdata,RP",
        "/SECTION:.data,RWP",
        "/SECTION:INIT,ERD",
        // core and compiler_builtins reference `_fltused`, the marker MSVC's
        // CRT defines for floating-point support; nothing reads its value.
        // Resolving it here, not with a `#[no_mangle]` static, keeps it out
        // of the cdylib's export table.
        "/ALTERNATENAME:_fltused=__ImageBase",
    ];
    for arg in args {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
}
