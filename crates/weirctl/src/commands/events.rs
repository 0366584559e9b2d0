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

use crate::output::{Failure, Output};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use std::net::{Ipv4Addr, Ipv6Addr};
use weir_client::paths::{to_dos_path, DriveMap};
use weir_client::weir_events::{self, Event, IpVersion, Record};
use weir_client::weir_policy::Policy;
use weir_client::{Client, ClientError, Transport};
use weir_etw::weir;

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

fn address(version: IpVersion, bytes: &[u8; 16]) -> String {
    match version {
        IpVersion::V4 => Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        IpVersion::V6 => Ipv6Addr::from(*bytes).to_string(),
    }
}

fn endpoint(version: IpVersion, address: &str, port: u16) -> String {
    match version {
        IpVersion::V4 => format!("{address}:{port}"),
        IpVersion::V6 => format!("[{address}]:{port}"),
    }
}

/// The protocol as users read it: the IANA name Weir knows (`tcp`, `udp`, `icmp`,
/// `icmpv6`, ...; the one table in `weir_etw::weir::protocol_name`, which ETW uses too),
/// otherwise the decimal number.
pub fn protocol_text(p: u8) -> String {
    weir::protocol_name(p).map_or_else(|| p.to_string(), str::to_string)
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

/// The version of the JSON shape of `weirctl events --json` (the `schema` field of every
/// line; documented in docs/events.md, "weirctl events --json"). Raised when a field is
/// removed or changes meaning; adding a field keeps it.
pub const JSON_SCHEMA: u32 = 1;

/// The rule names of one policy, by rule index, and the generation they belong to: what
/// `weirctl events` reads from the driver (`GET_POLICY`) to name the rule that decided.
///
/// Names are looked up by the rule's index (its position in the policy's rules, disabled
/// rules counted), never by id: ids need not be unique. And only for an event decided by
/// this very policy (the same generation): a rule at the same index of another policy is
/// another rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleNames {
    /// The policy's generation; 0 when no policy was loaded.
    pub generation: u64,
    /// `names[i]` is the name of rule `i`; empty when that rule has none.
    pub names: Vec<String>,
}

impl RuleNames {
    /// The names of `policy`, active at `generation` (`Client::get_policy`'s answer; no
    /// policy: no names).
    pub fn new(generation: u64, policy: Option<&Policy>) -> Self {
        let names = policy.map_or_else(Vec::new, |p| {
            p.rules.iter().map(|r| r.name.clone()).collect()
        });
        Self { generation, names }
    }

    /// The name of the rule that decided `e`: only when `e` was decided by a rule of this
    /// policy (`e.policy_generation` is this generation and not 0, and the record has the
    /// rule's index, which record version 3 carries) and that rule has a name. Otherwise
    /// `None`, and the line shows the rule id.
    pub fn name_of(&self, e: &Event) -> Option<&str> {
        if e.policy_generation == 0 || e.policy_generation != self.generation || e.rule_id.is_none() {
            return None;
        }
        let index = usize::try_from(e.rule_index?).ok()?;
        self.names.get(index).map(String::as_str).filter(|name| !name.is_empty())
    }
}

/// The rule names a run shows, kept current while it follows: read once at the start and
/// again when an event names a policy newer than the names (the policy was replaced).
/// A failed read leaves the names as they were (events of a newer policy then show ids),
/// and is tried again only for a still newer generation, not for every batch.
#[derive(Debug, Default)]
pub struct NameCache {
    names: Option<RuleNames>,
    /// The newest generation a read was made for (`None`: no read yet).
    read_for: Option<u64>,
    /// A failed read was already reported.
    reported: bool,
}

impl NameCache {
    /// The names to show (`None`: none could be read).
    pub fn names(&self) -> Option<&RuleNames> {
        self.names.as_ref()
    }

    /// Reads the names with `read` (`Client::get_policy`) if none were read yet or `newest`
    /// (the newest `policy_generation` of a batch, [`newest_generation`]) is past the
    /// generation of the last read. Returns the error of the first read that fails, to be
    /// reported once; later failures return `None`.
    pub fn refresh(
        &mut self,
        newest: u64,
        read: impl FnOnce() -> Result<(u64, Option<Policy>), ClientError>,
    ) -> Option<ClientError> {
        if self.read_for.is_some_and(|last| newest <= last) {
            return None;
        }
        match read() {
            Ok((generation, policy)) => {
                self.names = Some(RuleNames::new(generation, policy.as_ref()));
                self.read_for = Some(generation.max(newest));
                None
            }
            Err(e) => {
                self.read_for = Some(self.read_for.unwrap_or(0).max(newest));
                (!std::mem::replace(&mut self.reported, true)).then_some(e)
            }
        }
    }
}

/// The newest `policy_generation` among the connection records of one read (0 if none);
/// records that do not decode are left to [`print_batch`] to report.
pub fn newest_generation(bytes: &[u8]) -> u64 {
    weir_events::decode(bytes)
        .filter_map(|r| match r {
            Ok(Record::Connection(e)) => Some(e.policy_generation),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

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

/// One connection event as weirctl shows it: the JSON line of `--json` (its fields are the
/// documented schema) and, through `Display`, the text line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionView {
    /// [`JSON_SCHEMA`].
    pub schema: u32,
    /// Always `"connection"`.
    pub kind: &'static str,
    /// RFC 3339 UTC, milliseconds.
    pub time: String,
    /// The driver's system time: 100 ns intervals since 1601-01-01 UTC.
    pub time_100ns: u64,
    /// Run-time layer id (48 connect v4, 50 connect v6, 44 / 46 receive/accept v4 / v6).
    pub layer_id: u16,
    /// `ALE_AUTH_CONNECT_V4`, ...
    pub layer: &'static str,
    /// `outbound` or `inbound`.
    pub direction: &'static str,
    /// 4 or 6.
    pub ip_version: u8,
    /// Name (`tcp`, `udp`, `icmp`, `icmpv6`, ...) or the decimal number; null without a tuple.
    pub protocol: Option<String>,
    /// IANA number; null without a tuple.
    pub protocol_number: Option<u8>,
    /// Null when the layer did not supply the tuple.
    pub local_address: Option<String>,
    /// Null without a tuple.
    pub local_port: Option<u16>,
    /// Null without a tuple.
    pub remote_address: Option<String>,
    /// Null without a tuple.
    pub remote_port: Option<u16>,
    /// Null when the layer did not supply it.
    pub process_id: Option<u64>,
    /// The user's SID string (`S-1-5-21-...`); null when the record carries none.
    pub user: Option<String>,
    /// The image path with a drive letter (`C:\Windows\System32\svchost.exe`) when a drive
    /// of this machine maps its volume; otherwise the NT path; null without a path.
    pub app: Option<String>,
    /// The NT path as WFP reported it (`\device\harddiskvolume3\...`); null without a path.
    pub image_nt: Option<String>,
    /// The path was longer than the record keeps (260 UTF-16 units) and was cut.
    pub app_truncated: bool,
    /// `permit`, `block` or `write-right-absent` (a higher-weight filter decided).
    pub decision: &'static str,
    /// Generation of the policy that decided (as `weirctl status` shows it); null when no
    /// policy was loaded, the write right was absent, or the driver writes records older
    /// than version 3.
    pub policy_generation: Option<u64>,
    /// The rule that decided; null for the default action or no policy.
    pub rule_id: Option<u32>,
    /// The deciding rule's position in that policy's rules (from 0, disabled rules
    /// counted); null when `rule_id` is, or from a driver before record version 3.
    pub rule_index: Option<u32>,
    /// The rule's name, from the active policy when it is the one that decided
    /// ([`RuleNames::name_of`]); null when that rule has no name or the names of that
    /// policy are not known (it was replaced since, or could not be read).
    pub rule: Option<String>,
    /// The classification was a reauthorization.
    pub reauthorization: bool,
}

impl ConnectionView {
    /// The view of `e`; `drives` (the drive table of this machine) turns the NT image path
    /// into a drive-letter path, `names` (the active policy's) names the deciding rule.
    pub fn new(e: &Event, drives: Option<&dyn DriveMap>, names: Option<&RuleNames>) -> Self {
        let nt = (!e.path.is_empty()).then(|| String::from_utf16_lossy(e.path.units()));
        let app = nt.as_ref().map(|nt| drives.and_then(|d| to_dos_path(nt, d)).unwrap_or_else(|| nt.clone()));
        let tuple = |f: &dyn Fn() -> String| e.tuple.then(f);
        Self {
            schema: JSON_SCHEMA,
            kind: "connection",
            time: system_time_text(e.time),
            time_100ns: e.time,
            layer_id: e.layer_id,
            layer: weir::layer_name(e.layer_id),
            direction: weir::direction_name(e.direction),
            ip_version: match e.ip_version {
                IpVersion::V4 => 4,
                IpVersion::V6 => 6,
            },
            protocol: tuple(&|| protocol_text(e.protocol)),
            protocol_number: e.tuple.then_some(e.protocol),
            local_address: tuple(&|| address(e.ip_version, &e.local_addr)),
            local_port: e.tuple.then_some(e.local_port),
            remote_address: tuple(&|| address(e.ip_version, &e.remote_addr)),
            remote_port: e.tuple.then_some(e.remote_port),
            process_id: e.process_id,
            user: (!e.user.is_empty()).then(|| {
                let mut text = String::new();
                // Writing into a String cannot fail.
                let _ = e.user.write_text(&mut text);
                text
            }),
            app,
            image_nt: nt,
            app_truncated: e.path.truncated(),
            decision: weir::decision_name(e.decision),
            policy_generation: (e.policy_generation != 0).then_some(e.policy_generation),
            rule_id: e.rule_id,
            rule_index: e.rule_index,
            rule: names.and_then(|n| n.name_of(e)).map(str::to_string),
            reauthorization: e.reauthorization,
        }
    }
}

/// Time, direction, protocol, local -> remote, decision, rule, process id, user, image.
impl std::fmt::Display for ConnectionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = if self.direction == "outbound" { "out" } else { "in " };
        write!(f, "{} {dir} ", self.time)?;
        let version = if self.ip_version == 6 { IpVersion::V6 } else { IpVersion::V4 };
        match (&self.protocol, &self.local_address, self.local_port, &self.remote_address, self.remote_port) {
            (Some(p), Some(la), Some(lp), Some(ra), Some(rp)) => {
                write!(f, "{p} {} -> {}", endpoint(version, la, lp), endpoint(version, ra, rp))?
            }
            _ => write!(f, "(no tuple)")?,
        }
        write!(f, " {} ", self.decision)?;
        match (&self.rule, self.rule_id) {
            (Some(name), _) => write!(f, "rule {name}")?,
            (None, Some(id)) => write!(f, "rule {id}")?,
            (None, None) => write!(f, "default")?,
        }
        if self.reauthorization {
            write!(f, " reauth")?;
        }
        match self.process_id {
            Some(pid) => write!(f, " pid {pid}")?,
            None => write!(f, " pid -")?,
        }
        write!(f, " user {}", self.user.as_deref().unwrap_or("-"))?;
        match &self.app {
            Some(app) => write!(f, " {app}{}", if self.app_truncated { "..." } else { "" }),
            None => write!(f, " -"),
        }
    }
}

/// The dropped-events record as weirctl shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedView {
    /// [`JSON_SCHEMA`].
    pub schema: u32,
    /// Always `"dropped"`.
    pub kind: &'static str,
    /// Events this reader lost since the previous such record.
    pub count: u64,
}

impl std::fmt::Display for DroppedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "-- {} event(s) lost: this reader fell more than the driver's buffer behind --", self.count)
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
    use super::*;
    use serde_json::Value;
    use weir_client::paths::FixedDriveMap;
    use weir_client::weir_policy::{Action, Rule};
    use weir_events::{decode, encode_dropped, encode_event, AppPath, Decision, Direction, UserSid};

    fn event_line(e: &Event) -> String {
        ConnectionView::new(e, None, None).to_string()
    }

    fn event_json(e: &Event) -> Value {
        serde_json::to_value(ConnectionView::new(e, None, None)).unwrap()
    }

    /// The names of a policy of generation 7 whose rules are, by index: 0 id 10 "ssh",
    /// 1 id 20 (no name), 2 id 20 "web" (a duplicate id), 3 id 30 "dns".
    fn names() -> RuleNames {
        RuleNames::new(7, Some(&policy(&[(10, "ssh"), (20, ""), (20, "web"), (30, "dns")])))
    }

    fn policy(rules: &[(u32, &str)]) -> Policy {
        let mut p = Policy::permit_all();
        p.rules = rules
            .iter()
            .map(|&(id, name)| {
                let mut r = Rule::any(id, Action::Block);
                r.name = name.to_string();
                r
            })
            .collect();
        p
    }

    /// `event()` decided by rule `index` (id `id`) of the policy of `generation`.
    fn decided(generation: u64, id: u32, index: u32) -> Event {
        Event { policy_generation: generation, rule_id: Some(id), rule_index: Some(index), ..event() }
    }

    fn name(e: &Event) -> Option<String> {
        ConnectionView::new(e, None, Some(&names())).rule
    }

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
            user: UserSid::EMPTY,
            policy_generation: 7,
            rule_index: Some(2),
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
            "2026-11-30T23:59:01.123Z out tcp 10.0.0.5:50123 -> 93.184.216.34:443 block rule 20 pid 1234 user - \\device\\harddiskvolume3\\app.exe"
        );
        let j = event_json(&e);
        assert_eq!(j["schema"], JSON_SCHEMA);
        assert_eq!(j["remote_address"], "93.184.216.34");
        assert_eq!(j["remote_port"], 443);
        assert_eq!(j["protocol"], "tcp");
        assert_eq!(j["protocol_number"], 6);
        assert_eq!(j["decision"], "block");
        assert_eq!(j["rule_id"], 20);
        assert_eq!(j["rule_index"], 2);
        assert_eq!(j["policy_generation"], 7);
        assert_eq!(j["rule"], Value::Null, "no names were given");
        assert_eq!(j["process_id"], 1234);
        assert_eq!(j["layer"], "ALE_AUTH_CONNECT_V4");
        let mut v6 = e;
        v6.ip_version = IpVersion::V6;
        v6.remote_addr = Ipv6Addr::LOCALHOST.octets();
        v6.rule_id = None;
        v6.rule_index = None;
        v6.reauthorization = true;
        v6.protocol = 47;
        v6.decision = Decision::WriteRightAbsent;
        assert!(
            event_line(&v6).contains("gre [a00:5::]:50123 -> [::1]:443 write-right-absent default reauth"),
            "{}",
            event_line(&v6)
        );
        v6.protocol = 253;
        assert_eq!(event_json(&v6)["protocol"], "253", "unnamed protocols show their number");
        v6.tuple = false;
        let j = event_json(&v6);
        assert!(j["protocol"].is_null() && j["local_address"].is_null() && j["remote_port"].is_null());
        assert!(event_line(&v6).contains("(no tuple)"));
    }

    #[test]
    fn drive_letters_replace_the_volume_and_json_keeps_the_nt_path() {
        let drives = FixedDriveMap::new([("C:", "\\Device\\HarddiskVolume3")]);
        let v = ConnectionView::new(&event(), Some(&drives), None);
        assert_eq!(v.app.as_deref(), Some("C:\\app.exe"));
        assert_eq!(v.image_nt.as_deref(), Some("\\device\\harddiskvolume3\\app.exe"));
        assert!(v.to_string().ends_with(" C:\\app.exe"), "{v}");
        let other = FixedDriveMap::new([("D:", "\\Device\\HarddiskVolume9")]);
        let v = ConnectionView::new(&event(), Some(&other), None);
        assert_eq!(v.app, v.image_nt, "an unmapped volume keeps the NT path");
    }

    /// The documented JSON shape (docs/events.md, "weirctl events --json"): the table there,
    /// read from the file, names exactly the fields each line has, with their JSON types.
    #[test]
    fn json_lines_match_the_documented_schema() {
        let doc = include_str!("../../../../docs/events.md");
        let table = |kind: &str| -> Vec<(String, Vec<String>)> {
            let start = doc.find(&format!("<!-- schema:{kind} -->")).expect("schema table marker");
            doc[start..]
                .lines()
                .skip(3)
                .take_while(|l| l.starts_with('|'))
                .map(|l| {
                    let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                    let name = cells[1].trim_matches('`').to_string();
                    let types = cells[2].split(" or ").map(|t| t.trim().to_string()).collect();
                    (name, types)
                })
                .collect()
        };
        let json_type = |v: &Value| match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let check = |kind: &str, line: &Value| {
            let fields = table(kind);
            let obj = line.as_object().unwrap();
            let documented: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            let mut actual: Vec<&str> = obj.keys().map(String::as_str).collect();
            actual.sort_unstable();
            let mut want = documented.clone();
            want.sort_unstable();
            assert_eq!(actual, want, "fields of a {kind} line");
            for (name, types) in &fields {
                let t = json_type(&obj[name]);
                assert!(types.iter().any(|x| x == t), "{kind}.{name} is {t}, documented {types:?}");
            }
        };
        let drives = FixedDriveMap::new([("C:", "\\Device\\HarddiskVolume3")]);
        let mut e = event();
        e.user = UserSid::from_bytes(&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]);
        assert_eq!(ConnectionView::new(&e, None, None).user.as_deref(), Some("S-1-5-18"));
        assert!(ConnectionView::new(&e, None, None).to_string().contains(" user S-1-5-18 "));
        let named = json!(ConnectionView::new(&e, Some(&drives), Some(&names())));
        assert_eq!(named["rule"], "web");
        check("connection", &named);
        e.user = UserSid::EMPTY;
        e.tuple = false;
        e.process_id = None;
        e.rule_id = None;
        e.rule_index = None;
        e.policy_generation = 0;
        e.path = AppPath::EMPTY;
        let bare = json!(ConnectionView::new(&e, None, Some(&names())));
        for field in ["rule", "rule_index", "policy_generation"] {
            assert!(bare[field].is_null(), "{field}");
        }
        check("connection", &bare);
        check("dropped", &json!(DroppedView { schema: JSON_SCHEMA, kind: "dropped", count: 3 }));
        assert!(doc.contains(&format!("`schema` is {JSON_SCHEMA}")), "the doc names the current schema version");
    }

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

    #[test]
    fn the_rule_is_named_from_the_policy_that_decided_by_index() {
        let e = decided(7, 30, 3);
        let v = ConnectionView::new(&e, None, Some(&names()));
        assert_eq!(v.rule.as_deref(), Some("dns"));
        assert_eq!((v.rule_id, v.rule_index, v.policy_generation), (Some(30), Some(3), Some(7)));
        assert_eq!(
            v.to_string(),
            "2026-11-30T23:59:01.123Z out tcp 10.0.0.5:50123 -> 93.184.216.34:443 block rule dns pid 1234 \
             user - \\device\\harddiskvolume3\\app.exe"
        );
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(
            [&j["rule"], &j["rule_id"], &j["rule_index"], &j["policy_generation"]],
            [&json!("dns"), &json!(30), &json!(3), &json!(7)]
        );
        assert_eq!(name(&decided(7, 10, 0)).as_deref(), Some("ssh"));
    }

    #[test]
    fn duplicate_rule_ids_are_told_apart_by_index() {
        assert_eq!(name(&decided(7, 20, 2)).as_deref(), Some("web"));
        // Index 1 has the same id 20 but no name: never the name of the other rule 20.
        assert_eq!(name(&decided(7, 20, 1)), None);
        let twins = RuleNames::new(4, Some(&policy(&[(5, "first"), (5, "second")])));
        assert_eq!(twins.name_of(&decided(4, 5, 0)), Some("first"));
        assert_eq!(twins.name_of(&decided(4, 5, 1)), Some("second"));
    }

    #[test]
    fn names_of_another_policy_or_without_a_named_rule_are_null_and_the_line_shows_the_id() {
        for (e, why) in [
            (decided(6, 20, 2), "an older policy decided (the names are of generation 7)"),
            (decided(8, 20, 2), "a newer policy decided (not read yet, or unreadable)"),
            (decided(7, 20, 4), "index past the rules"),
            (decided(7, 20, u32::MAX), "index far past the rules"),
            (decided(7, 20, 1), "the rule has no name"),
            (decided(0, 20, 2), "generation 0: no policy"),
            (Event { rule_index: None, ..decided(7, 20, 2) }, "no index (a record before version 3)"),
        ] {
            let v = ConnectionView::new(&e, None, Some(&names()));
            assert_eq!(v.rule, None, "{why}");
            assert!(v.to_string().contains(" block rule 20 pid "), "{why}: {v}");
        }
        // Generation 0 on both sides is "no policy", not a match.
        let none = RuleNames { generation: 0, names: vec!["x".into()] };
        assert_eq!(none.name_of(&decided(0, 1, 0)), None);
        // The default action: no rule, no name, whatever the index says.
        let default = Event { rule_id: None, rule_index: None, ..decided(7, 0, 0) };
        assert_eq!(name(&default), None);
        assert!(event_line(&default).contains(" block default pid "));
        assert_eq!(RuleNames::new(7, None), RuleNames { generation: 7, names: vec![] });
    }

    #[test]
    fn older_records_decode_without_generation_or_index_and_show_the_id() {
        let mut buf = vec![0u8; 1024];
        let n = encode_event(&decided(7, 20, 2), &mut buf).unwrap();
        let Some(Ok(Record::Connection(v3))) = decode(&buf[..n]).next() else { panic!("v3 decodes") };
        assert_eq!((v3.policy_generation, v3.rule_index), (7, Some(2)));
        assert_eq!(name(&v3).as_deref(), Some("web"));
        buf[3] = 2; // the same bytes as a version-2 record: the trailer is padding
        let Some(Ok(Record::Connection(v2))) = decode(&buf[..n]).next() else { panic!("v2 decodes") };
        let v = ConnectionView::new(&v2, None, Some(&names()));
        assert_eq!((v.policy_generation, v.rule_index, v.rule.as_deref()), (None, None, None));
        assert!(v.to_string().contains(" block rule 20 pid "), "{v}");
    }

    #[test]
    fn the_newest_generation_of_a_batch_decides_a_reread() {
        let mut buf = vec![0u8; 4096];
        let mut n = encode_event(&decided(7, 20, 2), &mut buf).unwrap();
        n += encode_dropped(1, &mut buf[n..]).unwrap();
        n += encode_event(&decided(9, 20, 2), &mut buf[n..]).unwrap();
        n += encode_event(&Event { rule_id: None, rule_index: None, policy_generation: 0, ..event() }, &mut buf[n..])
            .unwrap();
        assert_eq!(newest_generation(&buf[..n]), 9);
        assert_eq!(newest_generation(&[]), 0);
        assert_eq!(newest_generation(&buf[..16]), 0, "a cut record is print_batch's to report");
    }

    #[test]
    fn the_cache_reads_once_then_only_for_a_newer_policy() {
        let reads = std::cell::Cell::new(0);
        let read = |generation: u64, rules: &[(u32, &str)]| {
            reads.set(reads.get() + 1);
            Ok((generation, Some(policy(rules))))
        };
        let mut cache = NameCache::default();
        assert!(cache.names().is_none());
        assert!(cache.refresh(0, || read(7, &[(1, "a")])).is_none());
        assert_eq!(cache.names().map(|n| n.generation), Some(7));
        assert_eq!(reads.get(), 1, "the start reads");
        for newest in [0, 6, 7] {
            assert!(cache.refresh(newest, || read(99, &[])).is_none());
        }
        assert_eq!(reads.get(), 1, "events of the known or older policies read nothing");
        assert!(cache.refresh(8, || read(8, &[(1, "b")])).is_none());
        assert_eq!(reads.get(), 2, "an event of a newer policy reads again");
        assert_eq!(cache.names().unwrap().name_of(&decided(8, 1, 0)), Some("b"));
        assert_eq!(cache.names().unwrap().name_of(&decided(7, 1, 0)), None, "the older policy's events show ids");
    }

    #[test]
    fn a_policy_that_cannot_be_read_leaves_the_names_reports_once_and_is_not_reread_per_batch() {
        let reads = std::cell::Cell::new(0);
        let fail = || {
            reads.set(reads.get() + 1);
            Err(ClientError::AccessDenied)
        };
        let mut cache = NameCache::default();
        assert!(matches!(cache.refresh(0, fail), Some(ClientError::AccessDenied)), "the first failure is reported");
        assert!(cache.names().is_none());
        assert!(cache.refresh(0, fail).is_none(), "no new policy: no retry");
        assert_eq!(reads.get(), 1);
        assert!(cache.refresh(3, fail).is_none(), "a retry for a newer policy fails quietly");
        assert!(cache.refresh(3, fail).is_none());
        assert_eq!(reads.get(), 2);
        assert!(cache.refresh(4, || Ok((4, Some(policy(&[(1, "n")]))))).is_none());
        assert_eq!(cache.names().unwrap().name_of(&decided(4, 1, 0)), Some("n"));
        assert!(cache.refresh(5, fail).is_none());
        assert_eq!(cache.names().unwrap().generation, 4, "a failed read keeps the names it had");
        // The stream goes on: a batch prints with whatever names there are.
        let mut buf = vec![0u8; 1024];
        let n = encode_event(&decided(5, 1, 0), &mut buf).unwrap();
        assert_eq!(print_batch(&Output::new(true), &buf[..n], None, cache.names()).unwrap(), 1);
    }
}
