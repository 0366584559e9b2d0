//! Case folding for application paths, shared by the driver (compiled lookup) and weirctl
//! (the reference evaluator, `policy check`'s warnings), so both compare paths alike.
//!
//! Windows compares NT paths case-insensitively by upcasing each UTF-16 code unit with the
//! file system's upcase table (`$UpCase` on NTFS; `RtlUpcaseUnicodeChar` in the kernel). Weir
//! folds with the *simple uppercase mapping* of the Unicode Character Database
//! (UnicodeData.txt, field 12; version in [`UCD_VERSION`]), restricted to one UTF-16 unit to
//! one unit: a character of the Basic Multilingual Plane whose simple uppercase is also in it
//! maps to that; everything else (characters without a mapping, surrogates, and the few whose
//! uppercase lies outside the BMP) is unchanged. The result does not depend on the running
//! system.
//!
//! The table (`fold/table.rs`) is generated from UnicodeData.txt by the test
//! `table_is_the_unicode_simple_uppercase` (`WEIR_REGEN_FOLD=1`; Debian's `unicode-data`
//! package installs the file), which also checks it against the file whenever the file is
//! present. It is two-level: 256 page numbers, then one page of 256 wrapping deltas per page
//! that has a mapping (all-zero page 0 for the rest): two loads per unit, no branch on script.
//!
//! Two paths are equal for Weir when they have the same length and their folded units are
//! equal. Folding is idempotent (`fold(fold(u)) == fold(u)`; tested over all 65,536 units).
//! A volume formatted by a Windows whose `$UpCase` predates a mapping of this table (or adds
//! one after it) compares that character differently; the mappings that exist in both, which
//! cover every script with case in the BMP since Unicode 5, agree.

mod table;

/// The Unicode version the fold table was generated from.
pub const UCD_VERSION: &str = table::UCD_VERSION;

/// The folded (upper-case) form of one UTF-16 code unit; see the module docs.
#[inline]
pub fn fold_unit(u: u16) -> u16 {
    let page = table::PAGE.get(usize::from(u >> 8)).copied().unwrap_or(0);
    let delta = table::DELTA
        .get(usize::from(page))
        .and_then(|p| p.get(usize::from(u & 0xFF)))
        .copied()
        .unwrap_or(0);
    u.wrapping_add(delta)
}

/// Whether `a` and `b` are equal after folding every unit.
pub fn eq_folded(a: &[u16], b: &[u16]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| fold_unit(*x) == fold_unit(*y))
}

/// Bits that are zero in four packed 16-bit lanes exactly when every lane is below 0x80.
const NON_ASCII: u64 = 0xFF80_FF80_FF80_FF80;

/// `fold_unit` applied to each of four packed 16-bit lanes, each below 0x80 (SWAR): a lane
/// `x` is in `a..=z` exactly when `x + 0x1F` has bit 7 set and `x + 0x05` has not; no lane
/// carries or borrows into its neighbour because every lane stays below 0x100.
#[inline]
const fn fold4_ascii(w: u64) -> u64 {
    const LANES: u64 = 0x0001_0001_0001_0001;
    let lower = w.wrapping_add(0x1F * LANES) & !w.wrapping_add(0x05 * LANES) & (0x80 * LANES);
    w.wrapping_sub(lower >> 2)
}

/// 64-bit hash of the folded units (and the length), used to pre-filter application
/// conditions: four units are packed per 64-bit word and mixed with one multiply, so a typical
/// 60-unit path costs 15 multiplies rather than 60 dependent ones. Not a security boundary: a
/// collision only costs one full comparison.
pub fn folded_hash(units: &[u16]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = (units.len() as u64).wrapping_mul(K);
    let mut chunks = units.chunks_exact(4);
    for c in &mut chunks {
        let raw = c.iter().fold(0u64, |acc, u| (acc << 16) | u64::from(*u));
        // NT paths are almost always ASCII: fold four such units at once; any other chunk
        // takes the per-unit table. Both give the same word (`fold4_ascii` is tested against
        // `fold_unit` for every ASCII unit in every lane).
        let w = if raw & NON_ASCII == 0 {
            fold4_ascii(raw)
        } else {
            c.iter()
                .fold(0u64, |acc, u| (acc << 16) | u64::from(fold_unit(*u)))
        };
        let m = u128::from(h ^ w) * u128::from(K);
        h = (m as u64) ^ ((m >> 64) as u64);
    }
    let w = chunks
        .remainder()
        .iter()
        .fold(0u64, |acc, u| (acc << 16) | u64::from(fold_unit(*u)));
    let m = u128::from(h ^ w ^ 0xFF) * u128::from(K);
    (m as u64) ^ ((m >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_latin1() {
        assert_eq!(fold_unit(u16::from(b'a')), u16::from(b'A'));
        assert_eq!(fold_unit(u16::from(b'z')), u16::from(b'Z'));
        assert_eq!(fold_unit(u16::from(b'A')), u16::from(b'A'));
        assert_eq!(fold_unit(u16::from(b'\\')), u16::from(b'\\'));
        assert_eq!(fold_unit(0x00E9), 0x00C9); // é -> É
        assert_eq!(fold_unit(0x00F7), 0x00F7); // ÷ unchanged
        assert_eq!(fold_unit(0x00FF), 0x0178);
        assert_eq!(fold_unit(0x0101), 0x0100);
        assert_eq!(fold_unit(0x013A), 0x0139);
        assert_eq!(fold_unit(0x0131), 0x0049); // dotless i -> I (simple uppercase)
        assert_eq!(fold_unit(0x03C9), 0x03A9);
        assert_eq!(fold_unit(0x0436), 0x0416);
        assert_eq!(fold_unit(0x0451), 0x0401);
        assert_eq!(fold_unit(0xD800), 0xD800);
    }

    #[test]
    fn scripts_with_case_fold_to_their_capitals() {
        // (lower, upper) pairs from many scripts; each lower folds to its upper, which stays.
        let pairs: &[(char, char, &str)] = &[
            ('a', 'A', "Latin"),
            ('\u{e9}', '\u{c9}', "Latin-1"),
            ('\u{1b6}', '\u{1b5}', "Latin Extended-B"),
            ('\u{1e09}', '\u{1e08}', "Latin Extended Additional"),
            ('\u{2c65}', '\u{23a}', "Latin Extended-C"),
            ('\u{a77f}', '\u{a77e}', "Latin Extended-D"),
            ('\u{3c9}', '\u{3a9}', "Greek"),
            ('\u{3c2}', '\u{3a3}', "Greek final sigma"),
            ('\u{1f00}', '\u{1f08}', "Greek Extended"),
            ('\u{436}', '\u{416}', "Cyrillic"),
            ('\u{4cf}', '\u{4c0}', "Cyrillic palochka"),
            ('\u{a641}', '\u{a640}', "Cyrillic Extended-B"),
            ('\u{561}', '\u{531}', "Armenian"),
            ('\u{10d0}', '\u{1c90}', "Georgian Mkhedruli"),
            ('\u{2d00}', '\u{10a0}', "Georgian Nuskhuri"),
            ('\u{13f8}', '\u{13f0}', "Cherokee"),
            ('\u{ab70}', '\u{13a0}', "Cherokee Supplement"),
            ('\u{2c30}', '\u{2c00}', "Glagolitic"),
            ('\u{2c81}', '\u{2c80}', "Coptic"),
            ('\u{24d0}', '\u{24b6}', "Enclosed Alphanumerics"),
            ('\u{2170}', '\u{2160}', "Roman numerals"),
            ('\u{ff41}', '\u{ff21}', "Fullwidth"),
            ('\u{b5}', '\u{39c}', "micro sign"),
        ];
        for &(lower, upper, script) in pairs {
            let (l, u) = (lower as u32 as u16, upper as u32 as u16);
            assert_eq!(fold_unit(l), u, "{script}");
            assert_eq!(fold_unit(u), u, "{script}");
        }
        // No case: unchanged.
        for c in [
            '\u{5d0}', '\u{627}', '\u{4e2d}', '\u{ac00}', '\u{3042}', '\u{df}',
        ] {
            assert_eq!(fold_unit(c as u32 as u16), c as u32 as u16, "{c}");
        }
    }

    /// Parses UnicodeData.txt: every BMP unit whose simple uppercase (field 12) is a BMP unit.
    fn simple_upper(ucd: &str) -> std::vec::Vec<(u16, u16)> {
        let mut out = std::vec::Vec::new();
        for line in ucd.lines() {
            let f: std::vec::Vec<&str> = line.split(';').collect();
            let (Some(cp), Some(up)) = (f.first(), f.get(12)) else {
                continue;
            };
            let (Ok(cp), Ok(up)) = (u32::from_str_radix(cp, 16), u32::from_str_radix(up, 16))
            else {
                continue;
            };
            if let (Ok(cp), Ok(up)) = (u16::try_from(cp), u16::try_from(up)) {
                out.push((cp, up));
            }
        }
        out
    }

    fn render(version: &str, map: &[(u16, u16)]) -> std::string::String {
        use core::fmt::Write as _;
        let mut delta = [[0u16; 256]; 256];
        for &(cp, up) in map {
            delta[usize::from(cp >> 8)][usize::from(cp & 0xFF)] = up.wrapping_sub(cp);
        }
        let mut pages: std::vec::Vec<[u16; 256]> = std::vec![[0; 256]];
        let mut page_of = [0u8; 256];
        for (hi, d) in delta.iter().enumerate() {
            if d.iter().any(|x| *x != 0) {
                page_of[hi] = u8::try_from(pages.len()).unwrap();
                pages.push(*d);
            }
        }
        let mut s = std::string::String::new();
        let _ = writeln!(s, "//! The simple uppercase mapping of UnicodeData.txt {version}, BMP to BMP, as wrapping deltas");
        let _ = writeln!(
            s,
            "//! (see `fold.rs`). Generated: `WEIR_REGEN_FOLD=1 cargo test -p weir-policy --lib"
        );
        let _ = writeln!(
            s,
            "//! table_is_the_unicode_simple_uppercase`; do not edit."
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "/// The Unicode version of the data.");
        let _ = writeln!(s, "pub(super) const UCD_VERSION: &str = \"{version}\";");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "/// Page number of each high byte (0: no mapping in that page)."
        );
        let _ = writeln!(s, "#[rustfmt::skip]");
        let _ = writeln!(s, "pub(super) const PAGE: [u8; 256] = [");
        for row in page_of.chunks(16) {
            let items: std::vec::Vec<std::string::String> =
                row.iter().map(|x| std::format!("{x}")).collect();
            let _ = writeln!(s, "    {},", items.join(", "));
        }
        let _ = writeln!(s, "];");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "/// Per page, the delta to add (wrapping) to each unit of it."
        );
        let _ = writeln!(s, "#[rustfmt::skip]");
        let _ = writeln!(
            s,
            "pub(super) const DELTA: [[u16; 256]; {}] = [",
            pages.len()
        );
        for p in &pages {
            let _ = writeln!(s, "    [");
            for row in p.chunks(16) {
                let items: std::vec::Vec<std::string::String> =
                    row.iter().map(|x| std::format!("{x:#06x}")).collect();
                let _ = writeln!(s, "        {},", items.join(", "));
            }
            let _ = writeln!(s, "    ],");
        }
        let _ = writeln!(s, "];");
        s
    }

    /// The committed table is what UnicodeData.txt gives (checked when the file is present:
    /// `WEIR_UCD` or Debian's `/usr/share/unicode/UnicodeData.txt`; regenerated with
    /// `WEIR_REGEN_FOLD=1`).
    #[test]
    fn table_is_the_unicode_simple_uppercase() {
        let path = std::env::var("WEIR_UCD")
            .unwrap_or_else(|_| "/usr/share/unicode/UnicodeData.txt".into());
        let Ok(ucd) = std::fs::read_to_string(&path) else {
            std::println!("{path} absent: table not re-derived");
            return;
        };
        let version = std::env::var("WEIR_UCD_VERSION").unwrap_or_else(|_| UCD_VERSION.into());
        let map = simple_upper(&ucd);
        let text = render(&version, &map);
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/src/fold/table.rs");
        if std::env::var_os("WEIR_REGEN_FOLD").is_some() {
            std::fs::write(file, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            text,
            "fold/table.rs is stale"
        );
        for (cp, up) in map {
            assert_eq!(fold_unit(cp), up, "U+{cp:04X}");
        }
    }

    #[test]
    fn idempotent_everywhere() {
        for u in 0..=u16::MAX {
            let f = fold_unit(u);
            assert_eq!(fold_unit(f), f, "unit {u:#x}");
        }
    }

    #[test]
    fn fold4_ascii_matches_fold_unit_in_every_lane() {
        let pack = |l: [u16; 4]| l.iter().fold(0u64, |acc, u| (acc << 16) | u64::from(*u));
        for x in 0..0x80u16 {
            for y in 0..0x80u16 {
                for lanes in [[x, y, x, y], [y, x, y, x], [x, x, y, y]] {
                    let want = pack(lanes.map(fold_unit));
                    assert_eq!(pack(lanes) & NON_ASCII, 0);
                    assert_eq!(fold4_ascii(pack(lanes)), want, "lanes {lanes:x?}");
                }
            }
        }
        // One unit at or above 0x80 in any lane leaves the fast path.
        for lane in 0..4 {
            for u in [0x80u16, 0xE9, 0x100, 0x0436, 0xD800, 0xFFFF] {
                assert_ne!((u64::from(u) << (16 * lane)) & NON_ASCII, 0);
            }
        }
    }

    #[test]
    fn hash_is_a_function_of_the_folded_units() {
        // Mixed chunks (ASCII and not) hash like their folded form, whichever path folds them.
        let paths = [
            "\\Device\\HarddiskVolume3\\Program Files\\Ünïcödé\\app.exe",
            "\\device\\harddiskvolume3\\program files\\ünïcödé\\APP.EXE",
            "абвгдеёжзabcdefgh{|}~`@[\\]^_",
            "АБВГДЕЁЖЗABCDEFGH{|}~`@[\\]^_",
            "a",
            "ab",
            "abc",
            "abcd",
            "abcde",
        ];
        for p in paths {
            let u: alloc::vec::Vec<u16> = p.encode_utf16().collect();
            let folded: alloc::vec::Vec<u16> = u.iter().map(|x| fold_unit(*x)).collect();
            assert_eq!(folded_hash(&u), folded_hash(&folded), "{p}");
        }
        let a: alloc::vec::Vec<u16> = paths[0].encode_utf16().collect();
        let b: alloc::vec::Vec<u16> = paths[1].encode_utf16().collect();
        assert!(eq_folded(&a, &b));
        assert_eq!(folded_hash(&a), folded_hash(&b));
    }

    #[test]
    fn eq_and_hash_agree() {
        let a: alloc::vec::Vec<u16> = "\\Device\\HarddiskVolume3\\Windows\\explorer.EXE"
            .encode_utf16()
            .collect();
        let b: alloc::vec::Vec<u16> = "\\device\\harddiskvolume3\\windows\\EXPLORER.exe"
            .encode_utf16()
            .collect();
        assert!(eq_folded(&a, &b));
        assert_eq!(folded_hash(&a), folded_hash(&b));
        let c: alloc::vec::Vec<u16> = "\\device\\harddiskvolume3\\windows\\explorer.ex"
            .encode_utf16()
            .collect();
        assert!(!eq_folded(&a, &c));
    }
}
