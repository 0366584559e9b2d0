//! Model-level validation errors, placed back in the file and worded in its terms.

use std::ops::Range;
use weir_policy::ValidationError;

/// A set as read, before rules refer to it.
pub(super) struct SetSource {
    pub(super) name: String,
    pub(super) span: Range<usize>,
}

/// Where in the file a model-level error is, and its message in the file's terms.
pub(super) fn locate_validation(
    v: &ValidationError,
    rules: &[Range<usize>],
    sets: &[SetSource],
) -> (Option<Range<usize>>, String) {
    use weir_policy::limits::*;
    let rule_at = |i: &u32| rules.get(*i as usize).cloned();
    let set_at = |i: &u32| sets.get(*i as usize);
    match v {
        ValidationError::TooManyAddrRanges { rule } => {
            (rule_at(rule), format!("this rule has more than {MAX_ADDR_RANGES} address ranges; put them in a [sets] entry"))
        }
        ValidationError::TooManyPortRanges { rule } => {
            (rule_at(rule), format!("this rule has more than {MAX_PORT_RANGES} port ranges"))
        }
        ValidationError::AppPathTooLong { rule } => {
            (rule_at(rule), format!("application path longer than {MAX_APP_PATH_UNITS} UTF-16 units"))
        }
        ValidationError::EmptyAddrRanges { rule } => (rule_at(rule), "empty address list (omit the field to match any address)".into()),
        ValidationError::EmptyPortRanges { rule } => (rule_at(rule), "empty port list (omit the field to match any port)".into()),
        ValidationError::EmptyAppPath { rule } => (rule_at(rule), "empty application path".into()),
        ValidationError::AddrRangeOrder { rule } | ValidationError::PortRangeOrder { rule } | ValidationError::SetIndex { rule, .. } => {
            (rule_at(rule), v.to_string())
        }
        ValidationError::SetNameTooLong { set } => {
            (set_at(set).map(|s| s.span.clone()), format!("set name longer than {MAX_SET_NAME_BYTES} bytes"))
        }
        ValidationError::SetNameEmpty { set } | ValidationError::SetEntryOrder { set } => {
            (set_at(set).map(|s| s.span.clone()), format!("set `{}`: {v}", set_at(set).map_or("", |s| s.name.as_str())))
        }
        ValidationError::TooManyRules => (None, format!("more than {MAX_RULES} rules (the limit)")),
        ValidationError::TooManySets => (None, format!("more than {MAX_SETS} address sets (the limit)")),
        ValidationError::TooManySetEntries => {
            (None, format!("more than {MAX_SET_ENTRIES_TOTAL} address-set entries in total (the limit)"))
        }
        _ => (None, v.to_string()),
    }
}
