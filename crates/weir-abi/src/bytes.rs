//! Bounds-checked little-endian field access on byte slices.

pub(crate) fn u16_at(b: &[u8], offset: usize) -> Option<u16> {
    b.get(offset..offset.checked_add(2)?)?.try_into().ok().map(u16::from_le_bytes)
}

pub(crate) fn u32_at(b: &[u8], offset: usize) -> Option<u32> {
    b.get(offset..offset.checked_add(4)?)?.try_into().ok().map(u32::from_le_bytes)
}

pub(crate) fn u64_at(b: &[u8], offset: usize) -> Option<u64> {
    b.get(offset..offset.checked_add(8)?)?.try_into().ok().map(u64::from_le_bytes)
}

/// Writes `bytes` at `offset`; `None` (and nothing written) if it does not fit.
pub(crate) fn put(out: &mut [u8], offset: usize, bytes: &[u8]) -> Option<()> {
    out.get_mut(offset..offset.checked_add(bytes.len())?)?.copy_from_slice(bytes);
    Some(())
}
