//! How `weirctl events` shows a record: [`ConnectionView`] and [`DroppedView`] (the JSON
//! line and, through `Display`, the text line), [`JSON_SCHEMA`], and the time, address and
//! protocol text they use.

use super::names::RuleNames;
use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};
use weir_client::paths::{to_dos_path, DriveMap};
use weir_client::weir_events::{Event, IpVersion};
use weir_etw::weir;

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
    /// Generation of the policy that decided (as `weirctl status` shows it); null before the
    /// first policy since the driver started, when the write right was absent, or from a
    /// driver writing records older than version 3 (after `policy clear`: the clear's).
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
        // `rule 30 "dns"`, as `policy explain` writes a rule: the id, then the quoted name (a name
        // may hold spaces or digits, so it is never shown bare).
        match (self.rule_id, &self.rule) {
            (Some(id), Some(name)) => write!(f, "rule {id} \"{}\"", name.replace('"', "\\\""))?,
            (Some(id), None) => write!(f, "rule {id}")?,
            (None, _) => write!(f, "default")?,
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decided, event, event_line, name, names};
    use super::*;
    use serde_json::{json, Value};
    use weir_client::paths::FixedDriveMap;
    use weir_client::weir_events::{decode, encode_event, AppPath, Decision, Record, UserSid};

    fn event_json(e: &Event) -> Value {
        serde_json::to_value(ConnectionView::new(e, None, None)).unwrap()
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
        let doc = include_str!("../../../../../docs/events.md");
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
}
