//! Link configuration for the two build flows.
//!
//! - WDK flow (`--features wdk`, on Windows with the eWDK): windows-drivers-rs'
//!   `wdk-build` configures everything, as in Microsoft's Rust driver samples.
//! - Linux flow (`cargo xtask build`): the link settings of a WDM kernel image,
//!   passed to lld in link.exe mode. Only applied when building for a Windows
//!   target; host builds (unit tests) need nothing.

fn main() {
    #[cfg(feature = "wdk")]
    {
        if let Err(err) = wdk_build::configure_wdk_binary_build() {
            println!("cargo::error=wdk-build could not configure the WDK build: {err}");
        }
    }

    #[cfg(not(feature = "wdk"))]
    linux_flow();
}

#[cfg(not(feature = "wdk"))]
fn linux_flow() {
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
