//! `weirctl events [--follow]`: connection events from the driver, one line each.
//!
//! Without `--follow`, prints the events waiting in the driver and returns: the read that
//! would pend (none left) is cancelled after [`IDLE_MS`]. With `--follow`, reads until Ctrl-C,
//! which cancels the pended read (`CancelIoEx`); the tool then exits with 0.

use crate::output::{Failure, Output};
use clap::Args;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, Ipv6Addr};
use weir_client::weir_events::{self, Decision, Direction, Event, IpVersion, Record};
use weir_client::ClientError;

/// Arguments of `weirctl events`.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  weirctl events\n  weirctl events --follow --json")]
pub struct EventsArgs {
    /// Keep reading until Ctrl-C (which cancels the pending read).
    #[arg(long, short)]
    pub follow: bool,
}

/// Without `--follow`, a read still pending after this long means "no more events".
#[cfg(windows)]
pub const IDLE_MS: u64 = 300;

fn address(version: IpVersion, bytes: &[u8; 16]) -> String {
    match version {
        IpVersion::V4 => Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        IpVersion::V6 => Ipv6Addr::from(*bytes).to_string(),
    }
}

fn endpoint(version: IpVersion, bytes: &[u8; 16], port: u16) -> String {
    match version {
        IpVersion::V4 => format!("{}:{port}", address(version, bytes)),
        IpVersion::V6 => format!("[{}]:{port}", address(version, bytes)),
    }
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        n => format!("proto-{n}"),
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Permit => "permit",
        Decision::Block => "block",
        Decision::WriteRightAbsent => "left-alone",
    }
}

/// Windows system time (100 ns intervals since 1601-01-01 UTC) as RFC 3339 UTC with
/// milliseconds. Days to civil date: the proleptic Gregorian calendar in 400-year eras.
pub fn system_time_text(t: u64) -> String {
    const UNIX_EPOCH_100NS: u64 = 116_444_736_000_000_000;
    let Some(since_unix) = t.checked_sub(UNIX_EPOCH_100NS) else {
        return format!("@{t}");
    };
    let millis = (since_unix / 10_000) % 1000;
    let secs = since_unix / 10_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    // Shift the epoch to 0000-03-01 so leap days end each 4/100/400-year cycle.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

fn app_text(e: &Event) -> String {
    let mut s = String::from_utf16_lossy(e.path.units());
    if e.path.truncated() {
        s.push_str("...");
    }
    s
}

/// One event as a line of text: time, direction, protocol, local -> remote, decision,
/// rule, process.
pub fn event_line(e: &Event) -> String {
    let dir = match e.direction {
        Direction::Outbound => "out",
        Direction::Inbound => "in ",
    };
    let tuple = if e.tuple {
        format!(
            "{} {} -> {}",
            protocol_name(e.protocol),
            endpoint(e.ip_version, &e.local_addr, e.local_port),
            endpoint(e.ip_version, &e.remote_addr, e.remote_port)
        )
    } else {
        "(no tuple)".into()
    };
    let rule = e
        .rule_id
        .map_or_else(|| "default".to_string(), |r| format!("rule {r}"));
    let pid = e
        .process_id
        .map_or_else(|| "-".to_string(), |p| p.to_string());
    let app = if e.path.is_empty() {
        "-".to_string()
    } else {
        app_text(e)
    };
    format!(
        "{} {dir} {tuple} {} {rule}{} pid {pid} {app}",
        system_time_text(e.time),
        decision_name(e.decision),
        if e.reauthorization { " reauth" } else { "" }
    )
}

/// One event as JSON.
pub fn event_json(e: &Event) -> Value {
    json!({
        "kind": "connection",
        "time": system_time_text(e.time),
        "time_100ns": e.time,
        "layer_id": e.layer_id,
        "direction": match e.direction { Direction::Outbound => "outbound", Direction::Inbound => "inbound" },
        "ip_version": match e.ip_version { IpVersion::V4 => 4, IpVersion::V6 => 6 },
        "protocol": e.protocol,
        "local_address": e.tuple.then(|| address(e.ip_version, &e.local_addr)),
        "local_port": e.tuple.then_some(e.local_port),
        "remote_address": e.tuple.then(|| address(e.ip_version, &e.remote_addr)),
        "remote_port": e.tuple.then_some(e.remote_port),
        "process_id": e.process_id,
        "app": (!e.path.is_empty()).then(|| String::from_utf16_lossy(e.path.units())),
        "app_truncated": e.path.truncated(),
        "decision": decision_name(e.decision),
        "rule_id": e.rule_id,
        "reauthorization": e.reauthorization,
    })
}

/// Prints the records of one read; returns how many there were. An undecodable record
/// ends the batch with an error (the driver and the tool disagree on the format).
pub fn print_batch(out: &Output, bytes: &[u8]) -> Result<usize, Failure> {
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
            Record::Connection(e) => out.line(&event_line(&e), &event_json(&e))?,
            Record::Dropped { count } => out.line(
                &format!("-- {count} event(s) dropped: the driver's buffer was full --"),
                &json!({ "kind": "dropped", "count": count }),
            )?,
            // Kinds a newer driver writes; skipped by their size, as the format intends.
            Record::Unknown { .. } => n -= 1,
        }
    }
    Ok(n)
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
    loop {
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
                print_batch(out, &bytes)?;
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
    loop {
        let bytes = client.read_event_bytes()?;
        print_batch(out, &bytes)?;
        if !follow {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_events::{encode_dropped, encode_event, AppPath};

    fn event() -> Event {
        let mut remote = [0u8; 16];
        remote[..4].copy_from_slice(&[93, 184, 216, 34]);
        let mut local = [0u8; 16];
        local[..4].copy_from_slice(&[10, 0, 0, 5]);
        Event {
            // 2026-11-30T23:59:01.123Z
            time: 116_444_736_000_000_000 + 1_796_083_141_123 * 10_000,
            layer_id: 48,
            direction: Direction::Outbound,
            ip_version: IpVersion::V4,
            tuple: true,
            protocol: 6,
            local_addr: local,
            local_port: 50123,
            remote_addr: remote,
            remote_port: 443,
            process_id: Some(1234),
            path: AppPath::from_units(
                &"\\device\\harddiskvolume3\\app.exe"
                    .encode_utf16()
                    .collect::<Vec<_>>(),
            ),
            decision: Decision::Block,
            rule_id: Some(20),
            reauthorization: false,
        }
    }

    #[test]
    fn system_time_converts_to_utc() {
        assert_eq!(
            system_time_text(116_444_736_000_000_000),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(system_time_text(event().time), "2026-11-30T23:59:01.123Z");
        // 2000-02-29 (a leap day of a 400-year year): 951782400 s after 1970.
        assert_eq!(
            system_time_text(116_444_736_000_000_000 + 951_782_400 * 10_000_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(system_time_text(5), "@5");
    }

    #[test]
    fn event_line_and_json_name_every_field() {
        let e = event();
        assert_eq!(
            event_line(&e),
            "2026-11-30T23:59:01.123Z out tcp 10.0.0.5:50123 -> 93.184.216.34:443 block rule 20 pid 1234 \\device\\harddiskvolume3\\app.exe"
        );
        let j = event_json(&e);
        assert_eq!(j["remote_address"], "93.184.216.34");
        assert_eq!(j["remote_port"], 443);
        assert_eq!(j["decision"], "block");
        assert_eq!(j["rule_id"], 20);
        assert_eq!(j["process_id"], 1234);
        let mut v6 = e;
        v6.ip_version = IpVersion::V6;
        v6.remote_addr = Ipv6Addr::LOCALHOST.octets();
        v6.rule_id = None;
        v6.reauthorization = true;
        v6.decision = Decision::WriteRightAbsent;
        assert!(
            event_line(&v6).contains("-> [::1]:443 left-alone default reauth"),
            "{}",
            event_line(&v6)
        );
    }

    #[test]
    fn batches_decode_with_drop_markers_and_bad_bytes_fail() {
        let mut buf = vec![0u8; 4096];
        let mut n = encode_event(&event(), &mut buf).unwrap();
        n += encode_dropped(7, &mut buf[n..]).unwrap();
        let out = Output::new(true);
        assert_eq!(print_batch(&out, &buf[..n]).unwrap(), 2);
        let mut bad = buf[..n].to_vec();
        bad[0] = 3; // a size below the header
        assert!(print_batch(&out, &bad).is_err());
    }
}
