//! What would change from one policy to another (`weirctl policy diff`): defaults, sets and
//! rules added, removed or changed. Rules are paired by id (the n-th rule with an id pairs
//! with the n-th with the same id), and compared in the file format, so a change is shown as
//! the lines that differ.

use crate::text;
use serde::Serialize;
use std::collections::HashMap;
use weir_policy::Policy;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `added`, `removed`, `changed` or `moved`.
    pub kind: &'static str,
    /// What changed: `rule 10`, `set lan`, `defaults`.
    pub what: String,
    /// The lines of the old form that are gone (`-`) and of the new form that are new (`+`).
    pub lines: Vec<String>,
}

/// Defaults lines, sets (name, entries), rules (id, lines).
type Sections = (
    Vec<String>,
    Vec<(String, Vec<String>)>,
    Vec<(u32, Vec<String>)>,
);

/// `rule 10`, or `rule 10 (web out)` for a rule with a name.
fn rule_label(id: u32, r: Option<&weir_policy::Rule>) -> String {
    match r.filter(|r| !r.name.is_empty()) {
        Some(r) => format!("rule {id} ({})", r.name),
        None => format!("rule {id}"),
    }
}

/// Splits the printed policy into its header (defaults), sets and rules.
fn sections(p: &Policy) -> Sections {
    let printed = text::format(p, None);
    let mut defaults = Vec::new();
    let mut sets = Vec::new();
    let mut rules = Vec::new();
    let mut set_lines: Vec<String> = Vec::new();
    for (part, chunk) in printed.split("\n[[rule]]\n").enumerate() {
        if part == 0 {
            let (head, body) = chunk.split_once("\n[sets]\n").unwrap_or((chunk, ""));
            defaults = head
                .lines()
                .filter(|l| !l.is_empty() && *l != "[defaults]")
                .map(String::from)
                .collect();
            for line in body.lines() {
                set_lines.push(line.to_string());
            }
        } else {
            let lines: Vec<String> = chunk
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            let id = rules.len();
            rules.push((p.rules.get(id).map_or(0, |r| r.id), lines));
        }
    }
    // `name = [` ... `]` or `name = []`.
    let mut current: Option<(String, Vec<String>)> = None;
    for line in set_lines {
        if let Some((name, _)) = line.split_once(" = ").filter(|_| !line.starts_with(' ')) {
            if let Some(c) = current.take() {
                sets.push(c);
            }
            current = Some((name.to_string(), vec![]));
        } else if let Some((_, entries)) = current.as_mut() {
            let e = line.trim().trim_end_matches(',').trim_matches('"');
            if !e.is_empty() && e != "]" {
                entries.push(e.to_string());
            }
        }
    }
    if let Some(c) = current.take() {
        sets.push(c);
    }
    (defaults, sets, rules)
}

fn line_diff(old: &[String], new: &[String]) -> Vec<String> {
    let mut out: Vec<String> = old
        .iter()
        .filter(|l| !new.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        new.iter()
            .filter(|l| !old.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out
}

/// The changes from `old` to `new`, in order: defaults, sets, rules (in `new`'s order, then
/// the removed ones).
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let (od, os, or) = sections(old);
    let (nd, ns, nr) = sections(new);
    let mut out = Vec::new();
    if od != nd {
        out.push(Change {
            kind: "changed",
            what: "defaults".into(),
            lines: line_diff(&od, &nd),
        });
    }
    let old_sets: HashMap<&str, &Vec<String>> = os.iter().map(|(n, e)| (n.as_str(), e)).collect();
    let new_sets: HashMap<&str, &Vec<String>> = ns.iter().map(|(n, e)| (n.as_str(), e)).collect();
    for (name, entries) in &ns {
        match old_sets.get(name.as_str()) {
            None => out.push(Change {
                kind: "added",
                what: format!("set {name}"),
                lines: vec![format!("+ {} entries", entries.len())],
            }),
            Some(o) if *o != entries => {
                let mut lines = line_diff(o, entries);
                let n = lines.len();
                lines.truncate(20);
                if n > 20 {
                    lines.push(format!("  ... and {} more", n - 20));
                }
                out.push(Change {
                    kind: "changed",
                    what: format!("set {name}"),
                    lines,
                });
            }
            Some(_) => {}
        }
    }
    for (name, entries) in &os {
        if !new_sets.contains_key(name.as_str()) {
            out.push(Change {
                kind: "removed",
                what: format!("set {name}"),
                lines: vec![format!("- {} entries", entries.len())],
            });
        }
    }
    // Pair rules by (id, occurrence).
    let key = |rules: &[(u32, Vec<String>)]| -> Vec<(u32, usize)> {
        let mut seen: HashMap<u32, usize> = HashMap::new();
        rules
            .iter()
            .map(|(id, _)| {
                let n = seen.entry(*id).or_insert(0);
                *n += 1;
                (*id, *n)
            })
            .collect()
    };
    let (ok, nk) = (key(&or), key(&nr));
    let old_at: HashMap<(u32, usize), usize> =
        ok.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let new_keys: std::collections::HashSet<(u32, usize)> = nk.iter().copied().collect();
    let mut last_old = None;
    for (i, k) in nk.iter().enumerate() {
        let new_lines = nr.get(i).map(|r| r.1.clone()).unwrap_or_default();
        let what = rule_label(k.0, new.rules.get(i));
        match old_at.get(k) {
            None => out.push(Change {
                kind: "added",
                what,
                lines: new_lines.iter().map(|l| format!("+ {l}")).collect(),
            }),
            Some(&j) => {
                let old_lines = or.get(j).map(|r| r.1.clone()).unwrap_or_default();
                if old_lines != new_lines {
                    out.push(Change {
                        kind: "changed",
                        what: what.clone(),
                        lines: line_diff(&old_lines, &new_lines),
                    });
                }
                if last_old.is_some_and(|l| j < l) {
                    out.push(Change {
                        kind: "moved",
                        what,
                        lines: vec![format!("now position {} (was {})", i + 1, j + 1)],
                    });
                }
                last_old = Some(last_old.map_or(j, |l: usize| l.max(j)));
            }
        }
    }
    for (j, k) in ok.iter().enumerate() {
        if !new_keys.contains(k) {
            let lines = or
                .get(j)
                .map(|r| r.1.iter().map(|l| format!("- {l}")).collect())
                .unwrap_or_default();
            out.push(Change {
                kind: "removed",
                what: rule_label(k.0, old.rules.get(j)),
                lines,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_policy::{Action, AddrRange, AddressSet, PortCond, Rule};

    #[test]
    fn rules_and_sets_added_removed_changed_and_moved() {
        let mut old = Policy::permit_all();
        old.sets.push(AddressSet {
            name: "lan".into(),
            entries: vec![AddrRange::V4 { lo: 1, hi: 1 }],
        });
        old.rules = vec![
            Rule::any(1, Action::Block),
            Rule::any(2, Action::Permit),
            Rule::any(3, Action::Block),
        ];
        let mut new = old.clone();
        new.default_inbound = Action::Block;
        new.sets[0].entries.push(AddrRange::V4 { lo: 5, hi: 5 });
        new.rules.remove(0);
        new.rules[0].remote_port = Some(PortCond {
            ranges: vec![(443, 443)],
        });
        new.rules.push(Rule::any(4, Action::Permit));
        new.rules.swap(0, 1);
        let got: Vec<(&str, String)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.kind, c.what))
            .collect();
        assert_eq!(
            got,
            vec![
                ("changed", "defaults".into()),
                ("changed", "set lan".into()),
                ("changed", "rule 2".into()),
                ("moved", "rule 2".into()),
                ("added", "rule 4".into()),
                ("removed", "rule 1".into()),
            ]
        );
        let c = diff(&old, &new);
        assert_eq!(
            c[0].lines,
            ["- inbound = \"permit\"", "+ inbound = \"block\""]
        );
        assert_eq!(c[1].lines, ["+ 0.0.0.5"]);
        assert_eq!(c[2].lines, ["+ remote_port = 443"]);
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn name_description_and_enabled_changes_are_rule_changes() {
        let mut old = Policy::permit_all();
        old.rules = vec![Rule::any(1, Action::Block), Rule::any(2, Action::Permit)];
        let mut new = old.clone();
        new.rules[0].name = "block all".into();
        new.rules[0].description = "until the audit".into();
        new.rules[1].enabled = false;
        let c = diff(&old, &new);
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.kind, c.what.as_str())).collect();
        assert_eq!(
            got,
            [("changed", "rule 1 (block all)"), ("changed", "rule 2")]
        );
        assert_eq!(
            c[0].lines,
            ["+ name = 'block all'", "+ description = 'until the audit'"]
        );
        assert_eq!(c[1].lines, ["+ enabled = false"]);
    }
}

