//! Model-level validation errors, placed back in the file at the field at fault and worded in
//! the file's terms.

use std::ops::Range;
use weir_policy::{AddrCond, Policy, ValidationError};

/// A set as read, before rules refer to it.
pub(super) struct SetSource {
    pub(super) name: String,
    /// The set's key.
    pub(super) span: Range<usize>,
    /// The set's value.
    pub(super) value: Range<usize>,
    /// The list file as written after `@`, when the set is one.
    pub(super) list_file: Option<String>,
}

/// Where a rule and its fields are.
pub(super) struct RuleSource {
    /// The rule's table.
    pub(super) span: Range<usize>,
    pub(super) id_span: Option<Range<usize>>,
    pub(super) name: Option<Range<usize>>,
    pub(super) description: Option<Range<usize>>,
    pub(super) remote: Option<Range<usize>>,
    pub(super) local: Option<Range<usize>>,
    pub(super) remote_port: Option<Range<usize>>,
    pub(super) local_port: Option<Range<usize>>,
    pub(super) app: Option<Range<usize>>,
}

/// Where in the file a model-level error is, and its message in the file's terms.
pub(super) fn locate_validation(
    v: &ValidationError,
    policy: &Policy,
    rules: &[RuleSource],
    sets: &[SetSource],
) -> (Option<Range<usize>>, String) {
    use weir_policy::limits::*;
    let src = |i: &u32| rules.get(*i as usize);
    // The first of the fields named by `pick` that the rule has, else the rule.
    let field = |i: &u32, pick: &dyn Fn(&RuleSource) -> [Option<Range<usize>>; 2]| {
        src(i).and_then(|r| {
            pick(r)
                .into_iter()
                .flatten()
                .next()
                .or(Some(r.span.clone()))
        })
    };
    let set_at = |i: &u32| sets.get(*i as usize);
    let addr_field = |i: &u32| {
        let rule = policy.rules.get(*i as usize);
        let long = |c: Option<&AddrCond>| matches!(c, Some(AddrCond::Ranges(r)) if r.len() > MAX_ADDR_RANGES);
        let empty = |c: Option<&AddrCond>| matches!(c, Some(AddrCond::Ranges(r)) if r.is_empty());
        field(i, &|r: &RuleSource| {
            let remote_first =
                rule.is_some_and(|x| long(x.remote_addr.as_ref()) || empty(x.remote_addr.as_ref()));
            if remote_first {
                [r.remote.clone(), r.local.clone()]
            } else {
                [r.local.clone(), r.remote.clone()]
            }
        })
    };
    let port_field = |i: &u32| {
        let rule = policy.rules.get(*i as usize);
        field(i, &|r: &RuleSource| {
            let remote_first = rule.is_some_and(|x| {
                x.remote_port
                    .as_ref()
                    .is_some_and(|p| p.ranges.len() > MAX_PORT_RANGES || p.ranges.is_empty())
            });
            if remote_first {
                [r.remote_port.clone(), r.local_port.clone()]
            } else {
                [r.local_port.clone(), r.remote_port.clone()]
            }
        })
    };
    let app_field = |i: &u32| field(i, &|r: &RuleSource| [r.app.clone(), None]);
    match v {
        ValidationError::TooManyAddrRanges { rule } => {
            (addr_field(rule), format!("more than {MAX_ADDR_RANGES} address ranges in one rule; put them in a [sets] entry"))
        }
        ValidationError::TooManyPortRanges { rule } => {
            (port_field(rule), format!("more than {MAX_PORT_RANGES} port ranges in one rule"))
        }
        ValidationError::AppPathTooLong { rule } => {
            (app_field(rule), format!("application path longer than {MAX_APP_PATH_UNITS} UTF-16 units"))
        }
        ValidationError::EmptyAddrRanges { rule } => (addr_field(rule), "empty address list (omit the field to match any address)".into()),
        ValidationError::EmptyPortRanges { rule } => (port_field(rule), "empty port list (omit the field to match any port)".into()),
        ValidationError::EmptyAppPath { rule } => (app_field(rule), "empty application path".into()),
        ValidationError::AddrRangeOrder { rule } | ValidationError::SetIndex { rule, .. } => {
            (addr_field(rule), v.to_string())
        }
        ValidationError::PortRangeOrder { rule } => (port_field(rule), v.to_string()),
        ValidationError::SetNameTooLong { set } => {
            (set_at(set).map(|s| s.span.clone()), format!("set name longer than {MAX_SET_NAME_BYTES} bytes"))
        }
        ValidationError::SetNameEmpty { set } | ValidationError::SetEntryOrder { set } => {
            (set_at(set).map(|s| s.span.clone()), format!("set `{}`: {v}", set_at(set).map_or("", |s| s.name.as_str())))
        }
        ValidationError::RuleNameTooLong { rule } => (
            field(rule, &|r: &RuleSource| [r.name.clone(), None]),
            format!("name longer than {MAX_RULE_NAME_BYTES} bytes (UTF-8)"),
        ),
        ValidationError::RuleDescriptionTooLong { rule } => (
            field(rule, &|r: &RuleSource| [r.description.clone(), None]),
            format!("description longer than {MAX_RULE_DESCRIPTION_BYTES} bytes (UTF-8)"),
        ),
        ValidationError::RuleTextControl { rule } => (
            field(rule, &|r: &RuleSource| [r.name.clone(), r.description.clone()]),
            "name or description holds a control character".into(),
        ),
        ValidationError::TooManyRules => (None, format!("more than {MAX_RULES} rules (the limit)")),
        ValidationError::TooManySets => (None, format!("more than {MAX_SETS} address sets (the limit)")),
        ValidationError::TooManySetEntries => {
            (None, format!("more than {MAX_SET_ENTRIES_TOTAL} address-set entries in total (the limit)"))
        }
        _ => (None, v.to_string()),
    }
}
