//! Static checks of a Windows kernel driver image (x64 or ARM64) and its PDB.
//!
//! [`check_driver`] parses the image with `object` and the PDB with `pdb` and
//! reports one [`Check`] per property a loadable, HVCI-compatible WDM driver
//! needs (see docs/build.md). Nothing here trusts the linker: every property
//! is read back from the bytes.
//!
//! The PE checksum is computed by hand ([`pe_checksum`]): no maintained crate
//! provides it, and it is a dozen lines.

use object::pe::{
    IMAGE_DIRECTORY_ENTRY_BASERELOC, IMAGE_DIRECTORY_ENTRY_IMPORT, IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE,
    IMAGE_DLLCHARACTERISTICS_NX_COMPAT, IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_ARM64,
    IMAGE_NT_OPTIONAL_HDR64_MAGIC, IMAGE_REL_BASED_ABSOLUTE, IMAGE_REL_BASED_DIR64,
    IMAGE_SCN_MEM_DISCARDABLE, IMAGE_SCN_MEM_EXECUTE, IMAGE_SCN_MEM_NOT_PAGED, IMAGE_SCN_MEM_WRITE,
    IMAGE_SUBSYSTEM_NATIVE,
};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::LittleEndian as LE;
use object::Object;
use std::fmt;
use std::path::Path;

/// Modules a kernel driver may import from.
pub const KERNEL_MODULES: &[&str] = &["ntoskrnl.exe", "hal.dll", "fwpkclnt.sys", "netio.sys", "ndis.sys"];

/// fwpkclnt.sys functions Weir must import (the WFP lifetime of the design).
pub const REQUIRED_WFP_IMPORTS: &[&str] = &[
    "FwpmEngineOpen0",
    "FwpmEngineClose0",
    "FwpsCalloutRegister3",
    "FwpsCalloutUnregisterById0",
    "FwpmCalloutAdd0",
    "FwpmFilterAdd0",
];

/// Machine types of the images Weir builds: x64 (`IMAGE_FILE_MACHINE_AMD64`)
/// and ARM64 (`IMAGE_FILE_MACHINE_ARM64`), both PE32+. The caller that knows
/// which one it built compares [`Report::machine`].
pub const MACHINES: &[u16] = &[IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_ARM64];

const PAGE_SIZE: u32 = 0x1000;

/// One checked property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", if self.ok { "ok" } else { "FAIL" }, self.name, self.detail)
    }
}

/// All checks of one image.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Imports as (module, function), in table order.
    pub imports: Vec<(String, String)>,
    pub exports: Vec<String>,
    /// The file header's machine type (0x8664 x64, 0xaa64 ARM64).
    pub machine: u16,
}

impl Report {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn push(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check { name, ok, detail: detail.into() });
    }
}

/// Error reading the inputs at all (as opposed to a failed check).
#[derive(Debug)]
pub enum Error {
    Io(std::path::PathBuf, std::io::Error),
    NotPe64(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            Self::NotPe64(e) => write!(f, "not a PE32+ image: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The PE checksum algorithm (imagehlp's `CheckSumMappedFile`): 16-bit
/// one's-complement-style sum of the file with the checksum field taken as
/// zero, folded to 16 bits, plus the file length.
pub fn pe_checksum(data: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in data.chunks(2).enumerate() {
        let offset = i * 2;
        if offset == checksum_offset || offset == checksum_offset + 2 {
            continue;
        }
        let word = match chunk {
            [lo, hi] => u16::from_le_bytes([*lo, *hi]),
            [lo] => u16::from(*lo),
            _ => 0,
        };
        sum += u64::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    // Truncation intended: the checksum is 32-bit by definition.
    #[allow(clippy::cast_possible_truncation)]
    let folded = sum as u32;
    folded.wrapping_add(u32::try_from(data.len()).unwrap_or(u32::MAX))
}

/// (GUID bytes as stored in the CodeView record, age, PDB file name).
pub type CodeView = ([u8; 16], u32, String);

/// Reads the PDB's GUID and age (from its PDB info stream), with the GUID in
/// the CodeView record's byte order.
pub fn pdb_identity(pdb_path: &Path) -> Result<([u8; 16], u32), String> {
    let file = std::fs::File::open(pdb_path).map_err(|e| format!("{}: {e}", pdb_path.display()))?;
    let mut pdb = pdb::PDB::open(file).map_err(|e| format!("{}: {e}", pdb_path.display()))?;
    let info = pdb.pdb_information().map_err(|e| format!("{}: {e}", pdb_path.display()))?;
    let guid = info.guid.to_bytes_le();
    // The DBI stream's age is the one the debugger matches against.
    let age = pdb.debug_information().map(|d| d.age()).ok().flatten().unwrap_or(info.age);
    Ok((guid, age))
}

/// Checks `image` (and, if given, that `pdb` matches it).
pub fn check_driver(image: &Path, pdb: Option<&Path>) -> Result<Report, Error> {
    let data = std::fs::read(image).map_err(|e| Error::Io(image.to_path_buf(), e))?;
    let pdb_identity = pdb.map(|p| (p, pdb_identity(p)));
    check_bytes(&data, pdb_identity.as_ref().map(|(p, r)| (*p, r.clone())))
}

/// A PDB's path and its identity (GUID, age), or why it could not be read.
pub type PdbIdentity<'a> = (&'a Path, Result<([u8; 16], u32), String>);

/// Checks an image held in memory; `pdb` is the PDB's path and identity.
pub fn check_bytes(data: &[u8], pdb: Option<PdbIdentity<'_>>) -> Result<Report, Error> {
    let pe = PeFile64::parse(data).map_err(|e| Error::NotPe64(e.to_string()))?;
    let nt = pe.nt_headers();
    let header = nt.file_header();
    let opt = nt.optional_header();
    let mut r = Report { machine: header.machine.get(LE), ..Report::default() };

    r.push(
        "machine",
        MACHINES.contains(&r.machine) && opt.magic() == IMAGE_NT_OPTIONAL_HDR64_MAGIC,
        format!("machine {:#06x} (x64 {IMAGE_FILE_MACHINE_AMD64:#06x} or ARM64 {IMAGE_FILE_MACHINE_ARM64:#06x}), optional header magic {:#x}", r.machine, opt.magic()),
    );
    r.push(
        "subsystem",
        opt.subsystem() == IMAGE_SUBSYSTEM_NATIVE,
        format!("subsystem {} (NATIVE is {IMAGE_SUBSYSTEM_NATIVE})", opt.subsystem()),
    );
    let dll = opt.dll_characteristics();
    r.push(
        "dynamic-base",
        dll & IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE != 0,
        format!("DllCharacteristics {dll:#06x}"),
    );
    r.push("nx-compat", dll & IMAGE_DLLCHARACTERISTICS_NX_COMPAT != 0, format!("DllCharacteristics {dll:#06x}"));

    // Sections.
    let sections: Vec<_> = pe.section_table().iter().collect();
    let section_name = |s: &object::pe::ImageSectionHeader| String::from_utf8_lossy(s.raw_name()).trim_end_matches('\0').to_string();
    let misaligned: Vec<String> = sections
        .iter()
        .filter(|s| s.virtual_address.get(LE) % PAGE_SIZE != 0)
        .map(|s| section_name(s))
        .collect();
    r.push(
        "page-aligned-sections",
        opt.section_alignment() == PAGE_SIZE && misaligned.is_empty(),
        format!("SectionAlignment {:#x}; misaligned: {misaligned:?}", opt.section_alignment()),
    );
    let wx: Vec<String> = sections
        .iter()
        .filter(|s| {
            let c = s.characteristics.get(LE);
            c & IMAGE_SCN_MEM_WRITE != 0 && c & IMAGE_SCN_MEM_EXECUTE != 0
        })
        .map(|s| section_name(s))
        .collect();
    r.push("no-writable-executable-section", wx.is_empty(), format!("W+X sections: {wx:?}"));
    let paged: Vec<String> = sections
        .iter()
        .filter(|s| {
            let c = s.characteristics.get(LE);
            c & IMAGE_SCN_MEM_DISCARDABLE == 0 && c & IMAGE_SCN_MEM_NOT_PAGED == 0
        })
        .map(|s| section_name(s))
        .collect();
    r.push(
        "resident-sections",
        paged.is_empty(),
        format!("pageable non-discardable sections (code or data that classify at DISPATCH_LEVEL could touch): {paged:?}"),
    );
    let section_of = |rva: u32| {
        sections.iter().find(|s| {
            let start = s.virtual_address.get(LE);
            let size = s.virtual_size.get(LE).max(s.size_of_raw_data.get(LE));
            rva >= start && rva < start.saturating_add(size)
        })
    };
    let is_exec = |rva: u32| section_of(rva).is_some_and(|s| s.characteristics.get(LE) & IMAGE_SCN_MEM_EXECUTE != 0);

    // Entry point.
    let entry = opt.address_of_entry_point();
    let exports: Vec<(String, u32)> = pe
        .export_table()
        .ok()
        .flatten()
        .map(|t| {
            t.exports()
                .map(|list| {
                    list.iter()
                        .filter_map(|e| {
                            let name = String::from_utf8_lossy(e.name?).to_string();
                            match e.target {
                                object::read::pe::ExportTarget::Address(rva) => Some((name, rva)),
                                _ => None,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    r.exports = exports.iter().map(|(n, _)| n.clone()).collect();
    let driver_entry = exports.iter().find(|(n, _)| n == "DriverEntry").map(|(_, rva)| *rva);
    r.push(
        "entry-point-is-driverentry",
        entry != 0 && Some(entry) == driver_entry && is_exec(entry),
        format!("AddressOfEntryPoint {entry:#x}, DriverEntry {driver_entry:?}, in executable section: {}", is_exec(entry)),
    );
    r.push(
        "exports",
        r.exports == ["DriverEntry"],
        format!("exports {:?} (only DriverEntry expected)", r.exports),
    );

    // Imports.
    let dirs = pe.data_directories();
    let import_rva = dirs.get(IMAGE_DIRECTORY_ENTRY_IMPORT).map_or(0, |d| d.virtual_address.get(LE));
    r.push(
        "import-table-not-executable",
        import_rva != 0 && !is_exec(import_rva),
        format!("import directory at {import_rva:#x}, executable: {}", is_exec(import_rva)),
    );
    let mut import_error = None;
    match pe.import_table() {
        Ok(Some(table)) => {
            let mut descriptors = match table.descriptors() {
                Ok(d) => Some(d),
                Err(e) => {
                    import_error = Some(e.to_string());
                    None
                }
            };
            while let Some(Ok(Some(desc))) = descriptors.as_mut().map(|d| d.next()) {
                let module = table.name(desc.name.get(LE)).map(|n| String::from_utf8_lossy(n).to_string()).unwrap_or_default();
                let thunk = desc.original_first_thunk.get(LE);
                let thunk = if thunk == 0 { desc.first_thunk.get(LE) } else { thunk };
                if let Ok(mut thunks) = table.thunks(thunk) {
                    while let Ok(Some(t)) = thunks.next::<object::pe::ImageNtHeaders64>() {
                        let name = match table.import::<object::pe::ImageNtHeaders64>(t) {
                            Ok(object::read::pe::Import::Name(_, n)) => String::from_utf8_lossy(n).to_string(),
                            Ok(object::read::pe::Import::Ordinal(o)) => format!("#{o}"),
                            Err(e) => format!("<{e}>"),
                        };
                        r.imports.push((module.clone(), name));
                    }
                }
            }
        }
        Ok(None) => import_error = Some("no import table".into()),
        Err(e) => import_error = Some(e.to_string()),
    }
    let mut modules: Vec<String> = r.imports.iter().map(|(m, _)| m.clone()).collect();
    modules.dedup();
    let foreign: Vec<&String> = modules
        .iter()
        .filter(|m| !KERNEL_MODULES.iter().any(|k| k.eq_ignore_ascii_case(m)))
        .collect();
    r.push(
        "kernel-imports-only",
        import_error.is_none() && !modules.is_empty() && foreign.is_empty(),
        match &import_error {
            Some(e) => format!("cannot read imports: {e}"),
            None => format!("modules {modules:?}; non-kernel: {foreign:?}"),
        },
    );
    let missing: Vec<&&str> = REQUIRED_WFP_IMPORTS
        .iter()
        .filter(|f| !r.imports.iter().any(|(m, n)| m.eq_ignore_ascii_case("fwpkclnt.sys") && n == **f))
        .collect();
    r.push("required-wfp-imports", missing.is_empty(), format!("missing from fwpkclnt.sys: {missing:?}"));

    // Relocations.
    let reloc = dirs.get(IMAGE_DIRECTORY_ENTRY_BASERELOC);
    let reloc_size = reloc.map_or(0, |d| d.size.get(LE));
    // Every entry is DIR64 (a 64-bit pointer) or ABSOLUTE (block padding) on
    // both machines; anything else (HIGHLOW, ARM MOV32...) means a wrong
    // target or linker mode, which the loader would apply wrongly or refuse.
    let mut relocations = 0usize;
    let mut other_types: Vec<u16> = Vec::new();
    if let Some(mut blocks) = dirs.relocation_blocks(data, &pe.section_table()).ok().flatten() {
        while let Ok(Some(block)) = blocks.next() {
            for reloc in block {
                relocations += 1;
                if reloc.typ != IMAGE_REL_BASED_DIR64 && reloc.typ != IMAGE_REL_BASED_ABSOLUTE && !other_types.contains(&reloc.typ) {
                    other_types.push(reloc.typ);
                }
            }
        }
    }
    r.push(
        "relocations",
        reloc_size > 0 && relocations > 0 && other_types.is_empty(),
        format!("base relocation directory {reloc_size} bytes, {relocations} relocations; types other than DIR64/ABSOLUTE: {other_types:?}"),
    );

    // Checksum.
    let checksum_offset = usize::try_from(pe.dos_header().nt_headers_offset()).unwrap_or(0) + 4 + 20 + 64;
    let stored = opt.check_sum();
    let computed = pe_checksum(data, checksum_offset);
    r.push(
        "checksum",
        stored != 0 && stored == computed,
        format!("stored {stored:#010x}, computed {computed:#010x}"),
    );

    // CodeView / PDB.
    let cv = pe.pdb_info().ok().flatten().map(|info| {
        (info.guid(), info.age(), String::from_utf8_lossy(info.path()).to_string())
    });
    match &cv {
        Some((_, _, path)) => r.push(
            "codeview-bare-pdb-name",
            !path.contains(['\\', '/', ':']) && path.ends_with(".pdb"),
            format!("CodeView PDB name {path:?}"),
        ),
        None => r.push("codeview-bare-pdb-name", false, "no CodeView RSDS record"),
    }
    if let Some((pdb_path, identity)) = pdb {
        let (ok, detail) = match (&cv, identity) {
            (Some((guid, age, _)), Ok((pdb_guid, pdb_age))) => (
                *guid == pdb_guid && *age == pdb_age,
                format!("image GUID {} age {age}; {} GUID {} age {pdb_age}", hex(guid), pdb_path.display(), hex(&pdb_guid)),
            ),
            (None, _) => (false, "image has no CodeView record".to_string()),
            (_, Err(e)) => (false, format!("cannot read PDB: {e}")),
        };
        r.push("pdb-matches-image", ok, detail);
    }
    Ok(r)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn checksum_of_known_buffer() {
        // Words 0x0201, 0x0403, [4-byte checksum field skipped], 0x0807; plus length 10.
        let data = [1u8, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 7, 8];
        assert_eq!(pe_checksum(&data, 4), 0x0201 + 0x0403 + 0x0807 + 10);
    }

    #[test]
    fn checksum_folds_carries() {
        let data = [0xffu8; 6];
        // 0xffff * 3 folded = 0xffff (+carries) then + len.
        let c = pe_checksum(&data, 100);
        assert_eq!(c, 0xffff + 6);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(check_bytes(b"MZ not really", None).is_err());
        assert!(check_bytes(&[], None).is_err());
    }
}
