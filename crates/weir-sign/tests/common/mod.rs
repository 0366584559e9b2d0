//! Shared test helpers (included with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use weir_sign::{SigningCert, TestCert};

/// The test certificate, created once per target directory (RSA-3072
/// generation is slow in debug builds) and reused by every test.
pub fn test_cert() -> &'static (SigningCert, PathBuf) {
    static CERT: OnceLock<(SigningCert, PathBuf)> = OnceLock::new();
    CERT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-sign-test-cert");
        let cert = TestCert::load_or_create(&dir).unwrap();
        (cert, dir)
    })
}

/// An RSA key unrelated to the test certificate (a throwaway test key).
pub const UNRELATED_KEY_PEM: &str = include_str!("../data/unrelated-test-key.pem");

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// File offsets of the fields the Authenticode hash skips in [`make_pe`]'s
/// image: the checksum (4 bytes) and the security directory entry (8).
pub const PE_CHECKSUM_OFFSET: usize = 0x80 + 24 + 64;
pub const PE_SECURITY_DIR_OFFSET: usize = 0x80 + 24 + 112 + 4 * 8;

/// A minimal valid x64 native (driver-like) PE32+ image: headers, one
/// `.text` section (0x200 bytes of code: `xor eax,eax; ret` then int3) and
/// one `.rdata` section, file alignment 0x200, section alignment 0x1000.
pub fn make_pe() -> Vec<u8> {
    let mut b = vec![0u8; 0x600];
    // DOS header
    b[0] = b'M';
    b[1] = b'Z';
    put32(&mut b, 0x3c, 0x80); // e_lfanew
                               // PE signature + COFF header
    let pe = 0x80;
    b[pe..pe + 4].copy_from_slice(b"PE\0\0");
    let coff = pe + 4;
    put16(&mut b, coff, 0x8664); // AMD64
    put16(&mut b, coff + 2, 2); // sections
    put32(&mut b, coff + 4, 0x6553_f100); // timestamp
    put16(&mut b, coff + 16, 240); // SizeOfOptionalHeader
    put16(&mut b, coff + 18, 0x0022); // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
                                      // Optional header (PE32+)
    let opt = coff + 20;
    put16(&mut b, opt, 0x20b);
    b[opt + 2] = 14; // linker version
    put32(&mut b, opt + 4, 0x200); // SizeOfCode
    put32(&mut b, opt + 8, 0x200); // SizeOfInitializedData
    put32(&mut b, opt + 16, 0x1000); // AddressOfEntryPoint
    put32(&mut b, opt + 20, 0x1000); // BaseOfCode
    put64(&mut b, opt + 24, 0x1_4000_0000); // ImageBase
    put32(&mut b, opt + 32, 0x1000); // SectionAlignment
    put32(&mut b, opt + 36, 0x200); // FileAlignment
    put16(&mut b, opt + 40, 10); // OS version
    put16(&mut b, opt + 48, 10); // subsystem version
    put32(&mut b, opt + 56, 0x3000); // SizeOfImage
    put32(&mut b, opt + 60, 0x200); // SizeOfHeaders
    put16(&mut b, opt + 68, 1); // Subsystem NATIVE
    put16(&mut b, opt + 70, 0x0160); // HIGH_ENTROPY_VA | DYNAMIC_BASE | NX_COMPAT
    put64(&mut b, opt + 72, 0x4_0000); // stack reserve
    put64(&mut b, opt + 80, 0x1000); // stack commit
    put64(&mut b, opt + 88, 0x10_0000); // heap reserve
    put64(&mut b, opt + 96, 0x1000); // heap commit
    put32(&mut b, opt + 108, 16); // NumberOfRvaAndSizes
                                  // data directories all empty
    let sect = opt + 240;
    let mut section = |i: usize, name: &[u8], rva: u32, raw: u32, ch: u32| {
        let s = sect + i * 40;
        b[s..s + name.len()].copy_from_slice(name);
        put32(&mut b, s + 8, 0x100); // VirtualSize
        put32(&mut b, s + 12, rva);
        put32(&mut b, s + 16, 0x200); // SizeOfRawData
        put32(&mut b, s + 20, raw);
        put32(&mut b, s + 36, ch);
    };
    section(0, b".text", 0x1000, 0x200, 0x6000_0020);
    section(1, b".rdata", 0x2000, 0x400, 0x4000_0040);
    b[0x200..0x400].fill(0xcc);
    b[0x200..0x203].copy_from_slice(&[0x31, 0xc0, 0xc3]);
    for (i, byte) in b[0x400..0x500].iter_mut().enumerate() {
        *byte = i as u8;
    }
    b
}

/// A small INF with CRLF line ends.
pub fn make_inf() -> Vec<u8> {
    b"[Version]\r\nSignature=\"$WINDOWS NT$\"\r\nClass=WFPCALLOUTS\r\nClassGuid={57465043-616C-6C6F-7574-5F636C617373}\r\nProvider=%Weir%\r\nCatalogFile=weir.cat\r\nDriverVer=01/01/2024,1.0.0.0\r\nPnpLockdown=1\r\n\r\n[Strings]\r\nWeir=\"Weir test\"\r\n".to_vec()
}

/// `osslsigncode` if installed.
pub fn osslsigncode() -> Option<PathBuf> {
    let ok = Command::new("osslsigncode")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Some(PathBuf::from("osslsigncode"))
    } else {
        eprintln!("osslsigncode not installed: skipping its checks");
        None
    }
}
