//! The largest token id in a shard's bytes: the check that every id is inside the vocabulary,
//! run over a whole memory-mapped shard when it is opened. One pass at memory speed (the
//! compiler vectorises the fixed-width chunk loops; 16 or 8 lanes of `max`).

/// Largest of the little-endian `u16` ids in `bytes` (`None` for no whole id).
pub fn max_u16_le(bytes: &[u8]) -> Option<u32> {
    max_u16_dispatch(bytes)
}

/// Largest of the little-endian `u32` ids in `bytes` (`None` for no whole id).
pub fn max_u32_le(bytes: &[u8]) -> Option<u32> {
    max_u32_dispatch(bytes)
}

with_avx2! { fn max_u16_dispatch / max_u16_avx2 (bytes: &[u8]) -> Option<u32> = max_u16_portable }
with_avx2! { fn max_u32_dispatch / max_u32_avx2 (bytes: &[u8]) -> Option<u32> = max_u32_portable }

#[inline(always)]
fn max_u16_portable(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 2 {
        return None;
    }
    // Lane-wise maxima over 32 ids at a time, then one reduction.
    let mut lanes = [0u16; 32];
    let mut chunks = bytes.chunks_exact(64);
    for c in &mut chunks {
        for (l, pair) in lanes.iter_mut().zip(c.chunks_exact(2)) {
            *l = (*l).max(u16::from_le_bytes([pair[0], pair[1]]));
        }
    }
    let tail = chunks
        .remainder()
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]));
    lanes.iter().copied().chain(tail).max().map(u32::from)
}

#[inline(always)]
fn max_u32_portable(bytes: &[u8]) -> Option<u32> {
    if bytes.len() < 4 {
        return None;
    }
    let mut lanes = [0u32; 16];
    let mut chunks = bytes.chunks_exact(64);
    for c in &mut chunks {
        for (l, quad) in lanes.iter_mut().zip(c.chunks_exact(4)) {
            *l = (*l).max(u32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]));
        }
    }
    let tail = chunks
        .remainder()
        .chunks_exact(4)
        .map(|q| u32::from_le_bytes([q[0], q[1], q[2], q[3]]));
    lanes.iter().copied().chain(tail).max()
}
