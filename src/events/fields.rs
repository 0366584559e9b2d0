//! What one classification records: which classifications produce an
//! event ([`Selection`]) and the event's fields ([`event_for`]).

use crate::classify::{Applied, Outcome};
use core::net::IpAddr;
use weir_events::{AppPath, Decision, Direction, Event, IpVersion, UserSid};
use wfp_km::classify::{IncomingValues, Metadata};
use wfp_km::sys::fwps::{ale_auth_connect_v4 as connect, ale_auth_recv_accept_v4 as accept};

/// Which classifications produce an event.
#[derive(Clone, Copy, Debug)]
pub struct Selection {
    /// The driver setting: record every connection.
    pub log_all: bool,
}

impl Selection {
    /// Every block, every classification the policy marks for logging (a
    /// rule's `log`, or the policy's `log_all`), everything with `log_all`.
    pub fn wants(&self, outcome: &Outcome) -> bool {
        outcome.applied == Applied::Blocked || outcome.decision.is_some_and(|d| d.log) || self.log_all
    }
}

/// The event for one classification. `time` is the system time (100 ns
/// units since 1601).
pub fn event_for(outcome: &Outcome, values: &IncomingValues<'_>, meta: Option<&Metadata<'_>>, time: u64) -> Event {
    let layer = outcome.layer;
    let app_id = if layer.is_outbound() { connect::ALE_APP_ID } else { accept::ALE_APP_ID };
    let path = values
        .byte_blob(app_id)
        .or_else(|| meta.and_then(Metadata::process_path))
        .map_or(AppPath::EMPTY, AppPath::from_utf16le_bytes);
    let mut event = Event {
        time,
        layer_id: layer.layer_id(),
        direction: if layer.is_outbound() { Direction::Outbound } else { Direction::Inbound },
        ip_version: if layer.is_ipv6() { IpVersion::V6 } else { IpVersion::V4 },
        tuple: false,
        protocol: 0,
        local_addr: [0; 16],
        local_port: 0,
        remote_addr: [0; 16],
        remote_port: 0,
        process_id: outcome.process_id,
        path,
        decision: match outcome.applied {
            Applied::Permitted => Decision::Permit,
            Applied::Blocked => Decision::Block,
            Applied::WriteRightAbsent => Decision::WriteRightAbsent,
        },
        rule_id: outcome.decision.and_then(|d| d.rule).map(|(_, id)| id),
        rule_index: outcome.decision.and_then(|d| d.rule).map(|(index, _)| index),
        policy_generation: outcome.policy_generation,
        reauthorization: outcome.reauthorization,
        // ALE_USER_ID has the same index at the four layers.
        user: values
            .token_access_information(connect::ALE_USER_ID)
            .and_then(|(info, base)| wfp_km::ale::user_sid(info, base))
            .map_or(UserSid::EMPTY, UserSid::from_bytes),
    };
    if let Some(c) = outcome.connection {
        event.tuple = true;
        event.protocol = c.protocol;
        event.local_addr = address_bytes(c.local);
        event.local_port = c.local_port;
        event.remote_addr = address_bytes(c.remote);
        event.remote_port = c.remote_port;
    }
    event
}

/// Network byte order; IPv4 in the first four bytes.
fn address_bytes(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            if let Some(dst) = b.get_mut(..4) {
                dst.copy_from_slice(&v4.octets());
            }
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{on_classify, Counters, Decision as PolicyDecision, FWP_CONDITION_FLAG_IS_REAUTHORIZE};
    use crate::policy::PolicyStore;
    use weir_policy::Action;
    use wfp_km::ale::AleLayer;
    use wfp_km::classify::testing::{Classification, Value};
    use wfp_km::sys::fwps::FWPS_RIGHT_ACTION_WRITE;

    fn v6_values(flags: u32) -> Vec<Value> {
        let local = "fe80::1".parse::<core::net::Ipv6Addr>().unwrap().octets();
        let remote = "2001:db8::2".parse::<core::net::Ipv6Addr>().unwrap().octets();
        let mut v = vec![Value::Empty, Value::Empty, Value::Bytes16(local), Value::Empty, Value::U16(5353), Value::U8(17), Value::Bytes16(remote), Value::U16(53)];
        v.resize(12, Value::Empty);
        v.push(Value::U32(flags)); // index 12: FLAGS at the connect layers
        v
    }

    const APP: &[u16] = &[0x5c, 0x64, 0x5c, 0x61, 0x2e, 0x65, 0x78, 0x65]; // \d\a.exe

    #[test]
    fn event_fields_from_a_v6_connect_reauthorization() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let mut values = v6_values(FWP_CONDITION_FLAG_IS_REAUTHORIZE);
        values[0] = Value::Utf16(APP);
        let mut c = Classification::new(50, &values).rights(FWPS_RIGHT_ACTION_WRITE).process_id(77);
        let e = c.run(|values, meta, filter, out| {
            let o = on_classify(&counters, &store, values, meta, filter, out).unwrap();
            event_for(&o, values, meta, 1234)
        });
        assert_eq!(e.layer_id, 50);
        assert_eq!(e.direction, Direction::Outbound);
        assert_eq!(e.ip_version, IpVersion::V6);
        assert!(e.tuple);
        assert_eq!((e.protocol, e.local_port, e.remote_port), (17, 5353, 53));
        assert_eq!(e.remote_addr, "2001:db8::2".parse::<core::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(e.process_id, Some(77));
        assert_eq!(e.decision, Decision::Permit);
        assert_eq!(e.rule_id, None);
        assert!(e.reauthorization);
        assert_eq!(e.time, 1234);
        assert_eq!(e.path.units(), APP);
    }

    #[test]
    fn v4_accept_without_write_right_or_tuple() {
        let counters = Counters::new();
        let store = PolicyStore::new();
        let mut c = Classification::new(44, &[Value::Empty]);
        let e = c.run(|values, meta, filter, out| {
            let o = on_classify(&counters, &store, values, meta, filter, out).unwrap();
            event_for(&o, values, meta, 0)
        });
        assert_eq!((e.direction, e.ip_version), (Direction::Inbound, IpVersion::V4));
        assert!(!e.tuple && !e.reauthorization);
        assert_eq!(e.decision, Decision::WriteRightAbsent);
        assert_eq!(e.local_addr, [0; 16]);
        assert!(e.path.is_empty());
    }

    fn outcome(applied: Applied, decision: Option<PolicyDecision>) -> Outcome {
        Outcome {
            layer: AleLayer::ConnectV4,
            connection: None,
            process_id: None,
            reauthorization: false,
            decision,
            policy_generation: if decision.is_some() { 9 } else { 0 },
            applied,
            permitted: applied == Applied::Permitted,
        }
    }

    #[test]
    fn block_and_rule_ids_map_to_the_record() {
        let o = outcome(Applied::Blocked, Some(PolicyDecision::rule(Action::Block, 3, 42, false)));
        // SAFETY-free: event_for only reads the views, an empty classification suffices.
        let mut c = Classification::new(48, &[]);
        let e = c.run(|values, meta, _, _| event_for(&o, values, meta, 0));
        assert_eq!((e.decision, e.rule_id, e.rule_index, e.policy_generation), (Decision::Block, Some(42), Some(3), 9));
    }

    /// Which classifications are recorded, with the driver setting off: every
    /// block, and what the policy marks for logging (a rule's `log`, or
    /// `log_all` folded into the verdict); with it on, everything.
    #[test]
    fn recording_rules() {
        let log = Selection { log_all: false };
        let permit_rule = PolicyDecision::rule(Action::Permit, 0, 7, false);
        let permit_logged = PolicyDecision::rule(Action::Permit, 0, 7, true);
        assert!(log.wants(&outcome(Applied::Blocked, Some(PolicyDecision::default_action(Action::Block)))));
        assert!(log.wants(&outcome(Applied::Permitted, Some(permit_logged))));
        assert!(!log.wants(&outcome(Applied::Permitted, Some(permit_rule))));
        assert!(!log.wants(&outcome(Applied::Permitted, Some(PolicyDecision::monitor()))));
        assert!(!log.wants(&outcome(Applied::WriteRightAbsent, None)));
        let all = Selection { log_all: true };
        assert!(all.wants(&outcome(Applied::WriteRightAbsent, None)));
        assert!(all.wants(&outcome(Applied::Permitted, Some(permit_rule))));
    }

    #[test]
    fn ipv4_addresses_fill_the_first_four_bytes() {
        let b = address_bytes(IpAddr::V4(core::net::Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(&b[..4], &[10, 1, 2, 3]);
        assert!(b[4..].iter().all(|x| *x == 0));
    }
}
