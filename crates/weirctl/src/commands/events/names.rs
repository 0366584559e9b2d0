//! The rule names `weirctl events` shows: [`RuleNames`] (one policy's names, by rule index),
//! [`NameCache`] (kept current while following) and [`newest_generation`] (of a read).

use weir_client::weir_events::{self, Event, Record};
use weir_client::weir_policy::Policy;
use weir_client::ClientError;

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
/// records that do not decode are left to [`print_batch`](super::print_batch) to report.
pub fn newest_generation(bytes: &[u8]) -> u64 {
    weir_events::decode(bytes)
        .filter_map(|r| match r {
            Ok(Record::Connection(e)) => Some(e.policy_generation),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{decided, event, event_line, name, names, policy};
    use super::super::{print_batch, ConnectionView};
    use super::*;
    use crate::output::Output;
    use serde_json::json;
    use weir_events::{encode_dropped, encode_event};

    #[test]
    fn the_rule_is_named_from_the_policy_that_decided_by_index() {
        let e = decided(7, 30, 3);
        let v = ConnectionView::new(&e, None, Some(&names()));
        assert_eq!(v.rule.as_deref(), Some("dns"));
        assert_eq!((v.rule_id, v.rule_index, v.policy_generation), (Some(30), Some(3), Some(7)));
        assert_eq!(
            v.to_string(),
            "2026-11-30T23:59:01.123Z out tcp 10.0.0.5:50123 -> 93.184.216.34:443 block rule 30 \"dns\" pid 1234 \
             user - \\device\\harddiskvolume3\\app.exe"
        );
        // A quote inside a name is escaped, so the name's end stays findable.
        let mut quoted = v.clone();
        quoted.rule = Some("a \"b\"".into());
        assert!(quoted.to_string().contains(r#" block rule 30 "a \"b\"" pid "#), "{quoted}");
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
