//! The architectures Weir ships, under the names each tool in the package
//! flow uses: the PE machine type of the image (PE/COFF `IMAGE_FILE_MACHINE_*`),
//! stampinf's `-a` value (`$ARCH$`), the INF platform extension (`.NTamd64`,
//! `.NTarm64`, from Microsoft's "Creating INF Files for Multiple Platforms
//! and Operating Systems") and the Rust target.

use std::fmt;
use std::str::FromStr;

/// A target architecture of the driver package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x64: machine 0x8664, stampinf `amd64`, `.NTamd64`, `x86_64-pc-windows-msvc`.
    Amd64,
    /// ARM64: machine 0xAA64, stampinf `arm64`, `.NTarm64`, `aarch64-pc-windows-msvc`.
    Arm64,
}

/// A machine type, name or target that is not one of the [`Arch`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchError {
    /// A PE machine type other than 0x8664 (amd64) and 0xAA64 (arm64), e.g.
    /// 0x014C (x86) or 0xA641 (ARM64EC).
    UnknownMachine(u16),
    /// A name other than `amd64` and `arm64` (ASCII case ignored).
    UnknownName(String),
    /// A Rust target other than `x86_64-pc-windows-msvc` and `aarch64-pc-windows-msvc`.
    UnknownTarget(String),
}

impl fmt::Display for ArchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownMachine(m) => write!(
                f,
                "PE machine type {m:#06X} is neither amd64 (0x8664) nor arm64 (0xAA64)"
            ),
            Self::UnknownName(n) => write!(f, "architecture {n:?} is neither amd64 nor arm64"),
            Self::UnknownTarget(t) => write!(
                f,
                "target {t:?} is neither x86_64-pc-windows-msvc nor aarch64-pc-windows-msvc"
            ),
        }
    }
}

impl std::error::Error for ArchError {}

impl Arch {
    /// Every architecture, amd64 first.
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// stampinf's `-a` value, what `$ARCH$` becomes: `amd64` / `arm64`.
    /// Pass it as [`StampOptions::arch`](crate::StampOptions::arch).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The INF platform extension without its dot: `NTamd64` / `NTarm64`.
    pub fn nt_decoration(self) -> &'static str {
        match self {
            Arch::Amd64 => "NTamd64",
            Arch::Arm64 => "NTarm64",
        }
    }

    /// The image's PE machine type: `IMAGE_FILE_MACHINE_AMD64` (0x8664) /
    /// `IMAGE_FILE_MACHINE_ARM64` (0xAA64).
    pub fn machine(self) -> u16 {
        match self {
            Arch::Amd64 => 0x8664,
            Arch::Arm64 => 0xAA64,
        }
    }

    /// The architecture of an image with PE machine type `machine`.
    pub fn from_machine(machine: u16) -> Result<Arch, ArchError> {
        Arch::ALL
            .into_iter()
            .find(|a| a.machine() == machine)
            .ok_or(ArchError::UnknownMachine(machine))
    }

    /// The Rust target the kernel image is built for.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-pc-windows-msvc",
            Arch::Arm64 => "aarch64-pc-windows-msvc",
        }
    }

    /// The architecture of a Rust target (`--target`).
    pub fn from_rust_target(target: &str) -> Result<Arch, ArchError> {
        Arch::ALL
            .into_iter()
            .find(|a| a.rust_target() == target)
            .ok_or_else(|| ArchError::UnknownTarget(target.to_owned()))
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = ArchError;

    /// `amd64` or `arm64` (stampinf's spelling; ASCII case ignored).
    fn from_str(s: &str) -> Result<Arch, ArchError> {
        Arch::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ArchError::UnknownName(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Arch::ALL {
            assert_eq!(Arch::from_machine(a.machine()), Ok(a));
            assert_eq!(Arch::from_rust_target(a.rust_target()), Ok(a));
            assert_eq!(a.as_str().parse::<Arch>(), Ok(a));
            assert_eq!(a.as_str().to_uppercase().parse::<Arch>(), Ok(a));
            assert!(crate::ARCHES.contains(&a.as_str()));
            assert_eq!(a.nt_decoration(), format!("NT{a}"));
        }
    }

    #[test]
    fn other_machines_names_and_targets_are_errors() {
        for m in [0x014C, 0xA641, 0x01C4, 0] {
            assert_eq!(Arch::from_machine(m), Err(ArchError::UnknownMachine(m)));
        }
        assert_eq!(
            Arch::from_machine(0x014C).map_err(|e| e.to_string()),
            Err("PE machine type 0x014C is neither amd64 (0x8664) nor arm64 (0xAA64)".into())
        );
        for n in ["x86", "arm", "x64", "aarch64", ""] {
            assert!(n.parse::<Arch>().is_err(), "{n}");
        }
        assert!(Arch::from_rust_target("i686-pc-windows-msvc").is_err());
        assert!(Arch::from_rust_target("x86_64-unknown-linux-gnu").is_err());
    }
}
