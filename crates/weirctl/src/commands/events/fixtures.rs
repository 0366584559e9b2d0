//! Test fixtures shared by the tests of `events`, `view` and `names`: one event, the
//! policy that decided it, and its names.

use super::{ConnectionView, RuleNames};
use weir_client::weir_events::{AppPath, Decision, Direction, Event, IpVersion, UserSid};
use weir_client::weir_policy::{Action, Policy, Rule};

pub(super) fn event_line(e: &Event) -> String {
    ConnectionView::new(e, None, None).to_string()
}

/// The names of a policy of generation 7 whose rules are, by index: 0 id 10 "ssh",
/// 1 id 20 (no name), 2 id 20 "web" (a duplicate id), 3 id 30 "dns".
pub(super) fn names() -> RuleNames {
    RuleNames::new(7, Some(&policy(&[(10, "ssh"), (20, ""), (20, "web"), (30, "dns")])))
}

pub(super) fn policy(rules: &[(u32, &str)]) -> Policy {
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
pub(super) fn decided(generation: u64, id: u32, index: u32) -> Event {
    Event { policy_generation: generation, rule_id: Some(id), rule_index: Some(index), ..event() }
}

pub(super) fn name(e: &Event) -> Option<String> {
    ConnectionView::new(e, None, Some(&names())).rule
}

pub(super) fn event() -> Event {
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
