//! `weirctl events [--follow]`: connection events from the driver, one line each.
//!
//! Every run has its own handle, so its own cursor in the driver: it starts with the events
//! the driver's ring still holds (up to 512) and sees every later one, whatever other readers
//! do (at most 16 at once). Without `--follow`, prints them and returns: the read that would
//! pend (none left) is cancelled after [`IDLE_MS`]. With `--follow`, reads until Ctrl-C,
//! which cancels the pended read (`CancelIoEx`); the tool then exits with 0.
//!
//! The rule that decided is shown by name when the event says which policy decided (record
//! version 3: its generation and the rule's index) and that policy is the active one: the
//! run reads the active policy's names at the start and again when an event comes from a
//! newer policy ([`NameCache`]). Otherwise, or when the policy cannot be read (one warning),
//! the line shows the rule id.
//!
//! Its children:
//! - `view` (`events/view.rs`): the text and JSON lines of a record, [`JSON_SCHEMA`].
//! - `names` (`events/names.rs`): the rule names shown, and when to read them again.

mod names;
mod view;

#[cfg(test)]
mod fixtures;

pub use names::{newest_generation, NameCache, RuleNames};
pub use view::{system_time_text, ConnectionView, DroppedView, JSON_SCHEMA};

use crate::output::{Failure, Output};
use clap::Args;
use serde_json::json;
use weir_client::paths::DriveMap;
use weir_client::weir_events::{self, Record};
use weir_client::{Client, ClientError, Transport};

/// Arguments of `weirctl events`.
#[derive(Args)]
#[command(after_long_help = "Each run starts with the events the driver still holds (up to 512), then \
follows; several runs at once each see every event (at most 16 readers). --json prints one object per \
line with \"schema\": 1 (fields: docs/events.md).\n\nExamples:\n  weirctl events\n  weirctl events --follow --json")]
pub struct EventsArgs {
    /// Keep reading until Ctrl-C (which cancels the pending read).
    #[arg(long, short)]
    pub follow: bool,
}

/// Without `--follow`, a read still pending after this long means "no more events".
#[cfg(windows)]
pub const IDLE_MS: u64 = 300;

/// Brings `names` up to date for a read (`bytes`) on `client`'s handle; a policy that cannot
/// be read is one warning on stderr, and the events go on without names.
fn refresh_names<T: Transport>(
    names: &mut NameCache,
    bytes: Option<&[u8]>,
    client: &Client<T>,
    out: &Output,
) {
    let newest = bytes.map_or(0, newest_generation);
    match names.refresh(newest, || client.get_policy()) {
        // Ctrl-C hit this read instead of an event read; the loop stops.
        None | Some(ClientError::Cancelled) => {}
        Some(e) => out.warning(&format!(
            "cannot read the active policy, so events show rule ids without names: {e}"
        )),
    }
}

/// Prints the records of one read; returns how many there were. An undecodable record
/// ends the batch with an error (the driver and the tool disagree on the format).
/// `drives` and `names`: as for [`ConnectionView::new`].
pub fn print_batch(
    out: &Output,
    bytes: &[u8],
    drives: Option<&dyn DriveMap>,
    names: Option<&RuleNames>,
) -> Result<usize, Failure> {
    let mut n = 0;
    for record in weir_events::decode(bytes) {
        let record = record.map_err(|e| {
            Failure::Client(ClientError::Malformed {
                request: "read events",
                detail: e.to_string(),
            })
        })?;
        n += 1;
        match record {
            Record::Connection(e) => {
                let view = ConnectionView::new(&e, drives, names);
                out.line(&view.to_string(), &json!(view))?
            }
            Record::Dropped { count } => {
                let view = DroppedView { schema: JSON_SCHEMA, kind: "dropped", count };
                out.line(&view.to_string(), &json!(view))?
            }
            // Kinds a newer driver writes; skipped by their size, as the format intends.
            Record::Unknown { .. } => n -= 1,
        }
    }
    Ok(n)
}

/// This machine's drive table, read once (`QueryDosDeviceW` for A: to Z:), so each event's
/// path converts without 26 system calls.
#[cfg(windows)]
fn drive_snapshot() -> weir_client::paths::FixedDriveMap {
    use weir_client::paths::FixedDriveMap;
    let dos = weir_client::win32::DosDevices;
    FixedDriveMap::new(('A'..='Z').filter_map(|l| {
        let drive = format!("{l}:");
        dos.device_of(&drive).map(|dev| (drive, dev))
    }))
}

/// `weirctl events [--follow]`.
#[cfg(windows)]
pub fn run(args: &EventsArgs, out: &Output) -> Result<(), Failure> {
    let follow = args.follow;
    use std::sync::mpsc;
    use std::time::Duration;
    use weir_client::win32::CtrlCGuard;
    let client = crate::device::open()?;
    let canceller = client.transport().canceller();
    let guard = CtrlCGuard::install(canceller.clone())?;
    let drives = drive_snapshot();
    // The active policy's rule names, read once here and again when an event comes from a
    // newer policy (replaced while following).
    let mut names = NameCache::default();
    refresh_names(&mut names, None, &client, out);
    loop {
        // Ctrl-C between reads (while printing, or reading the policy) cancelled no pending
        // read: stop here rather than wait in the next one.
        if guard.pressed() {
            return Ok(());
        }
        // Without --follow, a watchdog cancels a read that is still pending when idle.
        let watchdog = (!follow).then(|| {
            let (done, wait) = mpsc::channel::<()>();
            let c = canceller.clone();
            let thread = std::thread::spawn(move || {
                if wait.recv_timeout(Duration::from_millis(IDLE_MS))
                    == Err(mpsc::RecvTimeoutError::Timeout)
                {
                    c.cancel();
                }
            });
            (done, thread)
        });
        let result = client.read_event_bytes();
        if let Some((done, thread)) = watchdog {
            let _ = done.send(());
            // Joined before the next read, so a late cancel can only hit this one.
            let _ = thread.join();
        }
        match result {
            Ok(bytes) => {
                refresh_names(&mut names, Some(&bytes), &client, out);
                print_batch(out, &bytes, Some(&drives), names.names())?;
            }
            Err(ClientError::Cancelled) => {
                if follow && !guard.pressed() {
                    return Err(Failure::Client(ClientError::Cancelled));
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `weirctl events [--follow]` off Windows (only the emulation suite's transport exists
/// here): no cancellation, so without `--follow` exactly one read.
#[cfg(not(windows))]
pub fn run(args: &EventsArgs, out: &Output) -> Result<(), Failure> {
    let follow = args.follow;
    let client = crate::device::open()?;
    let mut names = NameCache::default();
    refresh_names(&mut names, None, &client, out);
    loop {
        let bytes = client.read_event_bytes()?;
        refresh_names(&mut names, Some(&bytes), &client, out);
        print_batch(out, &bytes, None, names.names())?;
        if !follow {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{event, names};
    use super::*;
    use weir_events::{encode_dropped, encode_event};

    #[test]
    fn batches_decode_with_drop_markers_and_bad_bytes_fail() {
        let mut buf = vec![0u8; 4096];
        let mut n = encode_event(&event(), &mut buf).unwrap();
        n += encode_dropped(7, &mut buf[n..]).unwrap();
        let out = Output::new(true);
        assert_eq!(print_batch(&out, &buf[..n], None, Some(&names())).unwrap(), 2);
        let mut bad = buf[..n].to_vec();
        bad[0] = 3; // a size below the header
        assert!(print_batch(&out, &bad, None, None).is_err());
    }
}
