//! Packing buffers kept by each thread from one product to the next. Allocated zeroed for
//! every product, they were 2% of a one-thread training step of `configs/gutenberg-small.toml`
//! in `memset` alone (Xeon with AMX, `perf record`), and the right operand's buffer is
//! filled on the calling thread before the row tasks start. A reused buffer holds what the
//! last product left, so each packer writes every lane it uses and zeroes the padding itself.

use std::cell::Cell;
use std::thread::LocalKey;

/// Buffers larger than this many elements (64 MiB) are not kept: the memory would stay with
/// the thread for its whole life.
const KEEP: usize = 16 << 20;

thread_local! {
    /// The right operand's panels (packed on the calling thread).
    pub(crate) static RIGHT: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// A row task's left panels (the calling thread runs row tasks too, so not `RIGHT`).
    pub(crate) static LEFT: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// A row task's sums across chunks of depth (AMX).
    pub(crate) static SUMS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// A buffer of `len` elements taken from a thread's slot and given back when dropped. Its
/// contents are whatever an earlier product left (zeros only where it grew). The stored
/// vector keeps its longest length: truncating it made every larger product after a smaller
/// one zero the difference again (0.4% of a one-thread step in `memset`). A product that
/// runs inside another's row task on the same thread finds the slot empty and allocates.
pub(crate) struct Scratch<T: Copy + Default + 'static> {
    slot: &'static LocalKey<Cell<Vec<T>>>,
    buf: Vec<T>,
    len: usize,
}

impl<T: Copy + Default + 'static> Scratch<T> {
    pub(crate) fn take(slot: &'static LocalKey<Cell<Vec<T>>>, len: usize) -> Self {
        let mut buf = slot.take();
        if buf.len() < len {
            buf.resize(len, T::default());
        }
        Scratch { slot, buf, len }
    }
}

impl<T: Copy + Default + 'static> std::ops::Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len]
    }
}

impl<T: Copy + Default + 'static> std::ops::DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

impl<T: Copy + Default + 'static> Drop for Scratch<T> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() > KEEP {
            return;
        }
        // The larger of this buffer and one a nested product may have left is kept; none
        // during the thread's teardown.
        let _ = self.slot.try_with(|slot| {
            let other = slot.take();
            slot.set(if other.capacity() > buf.capacity() {
                other
            } else {
                buf
            });
        });
    }
}
