//! Weir's connection events: the record format shared by the driver and
//! user-mode readers, and the bounded ring classifyFn records into.
//!
//! - [`record`]: [`Event`], its self-describing wire record (size, kind,
//!   version), [`encode_event`], [`encode_dropped`] and the total decoder
//!   [`decode`] (any bytes give records or a [`DecodeError`], never a
//!   panic; fuzzed in `fuzz/`).
//! - [`broadcast`]: [`Broadcast`], the ring every reader sees whole: one
//!   write per record, a private [`Cursor`] per reader, a slow reader loses
//!   only its own oldest records (counted in its cursor); loom-checked with
//!   a broken variant (`tests/loom.rs`).
//! - [`stream`]: the driver's per-reader stream over the broadcast ring:
//!   [`ReaderTable`] (a fixed table of reader cursors, one per handle) and
//!   [`drain_cursor`] (one read's reply from one cursor, with that reader's
//!   own dropped-events record).
//! - [`ring`]: [`WakeGate`], the no-lost-wake-up handshake with parked
//!   readers (the driver uses it with the broadcast ring), and [`Ring`], a
//!   preallocated multi-producer queue whose producers never wait or
//!   allocate (full = drop and count): the shared queue the driver used
//!   before per-reader cursors, kept with its benchmark. Both are
//!   model-checked with loom (`tests/loom.rs`, run by `cargo xtask test`).
//!
//! The format is documented byte by byte in `docs/events.md`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod broadcast;
pub mod record;
pub mod ring;
pub mod stream;
mod sync;

pub use record::{
    decode, decode_one, encode_dropped, encode_event, AppPath, BufferTooSmall, DecodeError, Decision, Direction, Event,
    IpVersion, Record, Records, UserSid, MAX_CONNECTION_SIZE, MAX_PATH_UNITS, MAX_SID_BYTES, MIN_READ_BUFFER,
};
pub use broadcast::{Broadcast, BroadcastError, Cursor, Read};
pub use ring::{Ring, RingError, WakeGate};
pub use stream::{drain_cursor, EventRing, ReaderTable, TooManyReaders, RECORD_WORDS};

/// Fills `out` with as many whole records as fit, taken from `ring`: first a
/// dropped-events marker if events were lost since the last call, then
/// events, oldest first, while at least [`MAX_CONNECTION_SIZE`] bytes are
/// left (so an event is taken from the ring only when it surely fits, and
/// none is lost). Returns the bytes written; 0 when there was nothing to
/// report.
///
/// `out` must be at least [`MIN_READ_BUFFER`] bytes; a smaller buffer gets
/// `Err` and nothing is taken from the ring.
pub fn drain_into(ring: &Ring<Event>, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    if out.len() < MIN_READ_BUFFER {
        return Err(BufferTooSmall { needed: MIN_READ_BUFFER });
    }
    let mut written = 0;
    let dropped = ring.take_dropped();
    if dropped > 0 {
        // Fits: MIN_READ_BUFFER includes the marker.
        written += out.get_mut(written..).map_or(0, |rest| encode_dropped(dropped, rest).unwrap_or(0));
    }
    while out.len() - written >= MAX_CONNECTION_SIZE {
        let Some(event) = ring.pop() else { break };
        written += out.get_mut(written..).map_or(0, |rest| encode_event(&event, rest).unwrap_or(0));
    }
    Ok(written)
}
