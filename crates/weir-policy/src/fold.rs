//! Case folding for application paths.
//!
//! Windows compares NT paths case-insensitively by upcasing each UTF-16 code unit (the file
//! system's upcase table; `RtlUpcaseUnicodeChar` in the kernel). Weir folds with a fixed,
//! documented subset of the Unicode *simple uppercase* mapping (UnicodeData.txt, field 12),
//! one code unit to one code unit, so the result does not depend on the running system:
//!
//! | code units | maps to |
//! |---|---|
//! | U+0061..U+007A (`a`-`z`) | minus 0x20 (`A`-`Z`) |
//! | U+00B5 (micro sign) | U+039C |
//! | U+00E0..U+00FE except U+00F7 | minus 0x20 |
//! | U+00FF | U+0178 |
//! | U+0100..U+012F, U+0132..U+0137, U+014A..U+0177: odd units | minus 1 |
//! | U+0139..U+0148, U+0179..U+017E: even units | minus 1 |
//! | U+03B1..U+03C1, U+03C3..U+03CB (Greek) | minus 0x20 |
//! | U+03C2 (final sigma) | U+03A3 |
//! | U+0430..U+044F (Cyrillic) | minus 0x20 |
//! | U+0450..U+045F (Cyrillic) | minus 0x50 |
//! | everything else (including U+0130, U+0131, U+017F and surrogates) | unchanged |
//!
//! Two paths are equal for Weir when they have the same length and their folded units are
//! equal. Folding is idempotent (`fold(fold(u)) == fold(u)`; tested over all 65,536 units).
//! Characters outside the table compare exactly, which can differ from NTFS for other scripts.

/// The folded (upper-case) form of one UTF-16 code unit; see the module table.
#[inline]
pub const fn fold_unit(u: u16) -> u16 {
    match u {
        0x0061..=0x007A => u - 0x20,
        0x00B5 => 0x039C,
        0x00F7 => u,
        0x00E0..=0x00FE => u - 0x20,
        0x00FF => 0x0178,
        0x0100..=0x012F | 0x0132..=0x0137 | 0x014A..=0x0177 => {
            if u & 1 == 1 {
                u - 1
            } else {
                u
            }
        }
        0x0139..=0x0148 | 0x0179..=0x017E => {
            if u & 1 == 0 {
                u - 1
            } else {
                u
            }
        }
        0x03C2 => 0x03A3,
        0x03B1..=0x03C1 | 0x03C3..=0x03CB => u - 0x20,
        0x0430..=0x044F => u - 0x20,
        0x0450..=0x045F => u - 0x50,
        _ => u,
    }
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
        assert_eq!(fold_unit(0x0131), 0x0131);
        assert_eq!(fold_unit(0x03C9), 0x03A9);
        assert_eq!(fold_unit(0x0436), 0x0416);
        assert_eq!(fold_unit(0x0451), 0x0401);
        assert_eq!(fold_unit(0xD800), 0xD800);
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
