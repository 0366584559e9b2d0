//! Model-level validation shared by the encoder, the decoder and the compiler.

use core::fmt;

use crate::limits::*;
use crate::{AddrCond, AddrRange, Policy, PortCond, Rule};

/// Why a policy (model or decoded blob) is refused. `rule` / `set` fields are indices into
/// `Policy::rules` / `Policy::sets`.
///
/// [`ValidationError::code`] is stable: it is part of the driver's NTSTATUS
/// (`0xE057_0000 | code`, via [`crate::wire::DecodeError::code`]) and must never be renumbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidationError {
    /// More than [`MAX_RULES`] rules.
    TooManyRules,
    /// More than [`MAX_SETS`] sets.
    TooManySets,
    /// More than [`MAX_SET_ENTRIES_TOTAL`] set entries in all sets.
    TooManySetEntries,
    /// A rule's address condition has more than [`MAX_ADDR_RANGES`] ranges.
    TooManyAddrRanges { rule: u32 },
    /// All rules' address conditions together exceed [`MAX_RULE_ADDR_RANGES_TOTAL`].
    TooManyRuleAddrRanges,
    /// A port condition has more than [`MAX_PORT_RANGES`] ranges.
    TooManyPortRanges { rule: u32 },
    /// An application path is longer than [`MAX_APP_PATH_UNITS`].
    AppPathTooLong { rule: u32 },
    /// All application paths together exceed [`MAX_APP_UNITS_TOTAL`] units.
    TooManyAppUnits,
    /// A set name is longer than [`MAX_SET_NAME_BYTES`].
    SetNameTooLong { set: u32 },
    /// A set name is empty.
    SetNameEmpty { set: u32 },
    /// An address condition has no ranges.
    EmptyAddrRanges { rule: u32 },
    /// A port condition has no ranges.
    EmptyPortRanges { rule: u32 },
    /// An application path has no units.
    EmptyAppPath { rule: u32 },
    /// An address range of a rule has `lo > hi`.
    AddrRangeOrder { rule: u32 },
    /// An address range of a set has `lo > hi`.
    SetEntryOrder { set: u32 },
    /// A port range has `lo > hi`.
    PortRangeOrder { rule: u32 },
    /// A rule refers to a set index that does not exist.
    SetIndex { rule: u32, set: u32 },
    /// An allocation failed while checking (host helpers only).
    OutOfMemory,
    /// A rule name is longer than [`MAX_RULE_NAME_BYTES`].
    RuleNameTooLong { rule: u32 },
    /// A rule description is longer than [`MAX_RULE_DESCRIPTION_BYTES`].
    RuleDescriptionTooLong { rule: u32 },
    /// A rule name or description holds a control character (C0, DEL or C1): tools print
    /// them on terminals, where such characters would be commands, not text.
    RuleTextControl { rule: u32 },
}

impl ValidationError {
    /// Stable numeric code, 64..=127.
    pub fn code(&self) -> u32 {
        match self {
            ValidationError::TooManyRules => 64,
            ValidationError::TooManySets => 65,
            ValidationError::TooManySetEntries => 66,
            ValidationError::TooManyAddrRanges { .. } => 67,
            ValidationError::TooManyRuleAddrRanges => 68,
            ValidationError::TooManyPortRanges { .. } => 69,
            ValidationError::AppPathTooLong { .. } => 70,
            ValidationError::TooManyAppUnits => 71,
            ValidationError::SetNameTooLong { .. } => 72,
            ValidationError::SetNameEmpty { .. } => 73,
            ValidationError::EmptyAddrRanges { .. } => 74,
            ValidationError::EmptyPortRanges { .. } => 75,
            ValidationError::EmptyAppPath { .. } => 76,
            ValidationError::AddrRangeOrder { .. } => 77,
            ValidationError::SetEntryOrder { .. } => 78,
            ValidationError::PortRangeOrder { .. } => 79,
            ValidationError::SetIndex { .. } => 80,
            ValidationError::OutOfMemory => 81,
            ValidationError::RuleNameTooLong { .. } => 82,
            ValidationError::RuleDescriptionTooLong { .. } => 83,
            ValidationError::RuleTextControl { .. } => 84,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::TooManyRules => write!(f, "more than {MAX_RULES} rules"),
            ValidationError::TooManySets => write!(f, "more than {MAX_SETS} address sets"),
            ValidationError::TooManySetEntries => {
                write!(f, "more than {MAX_SET_ENTRIES_TOTAL} address-set entries in total")
            }
            ValidationError::TooManyAddrRanges { rule } => {
                write!(f, "rule #{rule}: address condition has more than {MAX_ADDR_RANGES} ranges")
            }
            ValidationError::TooManyRuleAddrRanges => write!(
                f,
                "rules' address conditions have more than {MAX_RULE_ADDR_RANGES_TOTAL} ranges in total"
            ),
            ValidationError::TooManyPortRanges { rule } => {
                write!(f, "rule #{rule}: port condition has more than {MAX_PORT_RANGES} ranges")
            }
            ValidationError::AppPathTooLong { rule } => write!(
                f,
                "rule #{rule}: application path longer than {MAX_APP_PATH_UNITS} UTF-16 units"
            ),
            ValidationError::TooManyAppUnits => {
                write!(f, "application paths exceed {MAX_APP_UNITS_TOTAL} UTF-16 units in total")
            }
            ValidationError::SetNameTooLong { set } => {
                write!(f, "set #{set}: name longer than {MAX_SET_NAME_BYTES} bytes")
            }
            ValidationError::SetNameEmpty { set } => write!(f, "set #{set}: empty name"),
            ValidationError::EmptyAddrRanges { rule } => {
                write!(f, "rule #{rule}: address condition without ranges")
            }
            ValidationError::EmptyPortRanges { rule } => {
                write!(f, "rule #{rule}: port condition without ranges")
            }
            ValidationError::EmptyAppPath { rule } => write!(f, "rule #{rule}: empty application path"),
            ValidationError::AddrRangeOrder { rule } => {
                write!(f, "rule #{rule}: address range with first > last")
            }
            ValidationError::SetEntryOrder { set } => {
                write!(f, "set #{set}: address range with first > last")
            }
            ValidationError::PortRangeOrder { rule } => {
                write!(f, "rule #{rule}: port range with first > last")
            }
            ValidationError::SetIndex { rule, set } => {
                write!(f, "rule #{rule}: refers to address set #{set}, which does not exist")
            }
            ValidationError::OutOfMemory => write!(f, "out of memory"),
            ValidationError::RuleNameTooLong { rule } => {
                write!(f, "rule #{rule}: name longer than {MAX_RULE_NAME_BYTES} bytes")
            }
            ValidationError::RuleDescriptionTooLong { rule } => write!(
                f,
                "rule #{rule}: description longer than {MAX_RULE_DESCRIPTION_BYTES} bytes"
            ),
            ValidationError::RuleTextControl { rule } => {
                write!(f, "rule #{rule}: name or description holds a control character")
            }
        }
    }
}

pub(crate) fn range_ordered(r: &AddrRange) -> bool {
    match r {
        AddrRange::V4 { lo, hi } => lo <= hi,
        AddrRange::V6 { lo, hi } => lo <= hi,
    }
}

/// Running totals across a policy, so the decoder can check limits as it goes.
#[derive(Default)]
pub(crate) struct Totals {
    pub rule_addr_ranges: usize,
    pub app_units: usize,
    pub set_entries: usize,
}

pub(crate) fn check_addr_cond(
    c: &AddrCond,
    rule: u32,
    set_count: usize,
    totals: &mut Totals,
) -> Result<(), ValidationError> {
    match c {
        AddrCond::Ranges(rs) => {
            if rs.is_empty() {
                return Err(ValidationError::EmptyAddrRanges { rule });
            }
            if rs.len() > MAX_ADDR_RANGES {
                return Err(ValidationError::TooManyAddrRanges { rule });
            }
            totals.rule_addr_ranges = totals.rule_addr_ranges.saturating_add(rs.len());
            if totals.rule_addr_ranges > MAX_RULE_ADDR_RANGES_TOTAL {
                return Err(ValidationError::TooManyRuleAddrRanges);
            }
            if !rs.iter().all(range_ordered) {
                return Err(ValidationError::AddrRangeOrder { rule });
            }
        }
        AddrCond::Set(s) => {
            if *s as usize >= set_count {
                return Err(ValidationError::SetIndex { rule, set: *s });
            }
        }
    }
    Ok(())
}

pub(crate) fn check_port_cond(c: &PortCond, rule: u32) -> Result<(), ValidationError> {
    if c.ranges.is_empty() {
        return Err(ValidationError::EmptyPortRanges { rule });
    }
    if c.ranges.len() > MAX_PORT_RANGES {
        return Err(ValidationError::TooManyPortRanges { rule });
    }
    if c.ranges.iter().any(|(lo, hi)| lo > hi) {
        return Err(ValidationError::PortRangeOrder { rule });
    }
    Ok(())
}

pub(crate) fn check_app_len(
    len: usize,
    rule: u32,
    totals: &mut Totals,
) -> Result<(), ValidationError> {
    if len == 0 {
        return Err(ValidationError::EmptyAppPath { rule });
    }
    if len > MAX_APP_PATH_UNITS {
        return Err(ValidationError::AppPathTooLong { rule });
    }
    totals.app_units = totals.app_units.saturating_add(len);
    if totals.app_units > MAX_APP_UNITS_TOTAL {
        return Err(ValidationError::TooManyAppUnits);
    }
    Ok(())
}

pub(crate) fn check_set_name(len: usize, set: u32) -> Result<(), ValidationError> {
    if len == 0 {
        return Err(ValidationError::SetNameEmpty { set });
    }
    if len > MAX_SET_NAME_BYTES {
        return Err(ValidationError::SetNameTooLong { set });
    }
    Ok(())
}

/// Lengths first (cheap, and what the decoder knows before it reads the text), then the
/// characters.
pub(crate) fn check_rule_text_len(
    name_len: usize,
    description_len: usize,
    rule: u32,
) -> Result<(), ValidationError> {
    if name_len > MAX_RULE_NAME_BYTES {
        return Err(ValidationError::RuleNameTooLong { rule });
    }
    if description_len > MAX_RULE_DESCRIPTION_BYTES {
        return Err(ValidationError::RuleDescriptionTooLong { rule });
    }
    Ok(())
}

/// Refuses C0 controls, DEL and C1 controls (`char::is_control`, general category Cc).
pub(crate) fn check_rule_text_chars(text: &str, rule: u32) -> Result<(), ValidationError> {
    if text.chars().any(char::is_control) {
        return Err(ValidationError::RuleTextControl { rule });
    }
    Ok(())
}

pub(crate) fn check_rule(
    r: &Rule,
    index: u32,
    set_count: usize,
    totals: &mut Totals,
) -> Result<(), ValidationError> {
    if let Some(c) = &r.remote_addr {
        check_addr_cond(c, index, set_count, totals)?;
    }
    if let Some(c) = &r.local_addr {
        check_addr_cond(c, index, set_count, totals)?;
    }
    if let Some(c) = &r.remote_port {
        check_port_cond(c, index)?;
    }
    if let Some(c) = &r.local_port {
        check_port_cond(c, index)?;
    }
    if let Some(a) = &r.app {
        check_app_len(a.0.len(), index, totals)?;
    }
    check_rule_text_len(r.name.len(), r.description.len(), index)?;
    check_rule_text_chars(&r.name, index)?;
    check_rule_text_chars(&r.description, index)?;
    Ok(())
}

pub(crate) fn validate(p: &Policy) -> Result<(), ValidationError> {
    if p.rules.len() > MAX_RULES {
        return Err(ValidationError::TooManyRules);
    }
    if p.sets.len() > MAX_SETS {
        return Err(ValidationError::TooManySets);
    }
    let mut totals = Totals::default();
    for (i, s) in p.sets.iter().enumerate() {
        let i = i as u32;
        check_set_name(s.name.len(), i)?;
        totals.set_entries = totals.set_entries.saturating_add(s.entries.len());
        if totals.set_entries > MAX_SET_ENTRIES_TOTAL {
            return Err(ValidationError::TooManySetEntries);
        }
        if !s.entries.iter().all(range_ordered) {
            return Err(ValidationError::SetEntryOrder { set: i });
        }
    }
    for (i, r) in p.rules.iter().enumerate() {
        check_rule(r, i as u32, p.sets.len(), &mut totals)?;
    }
    Ok(())
}
