//! `[Strings]`: undefined `%tokens%`, localized string sections, and
//! stampinf variables left in the text.

use std::collections::HashSet;

use super::{is_family, lower, Linter, Rule};

const STAMP_VARIABLES: [&str; 5] = [
    "$ARCH$",
    "$KMDFVERSION$",
    "$UMDFVERSION$",
    "$KMDFCOINSTALLERVERSION$",
    "$UMDFCOINSTALLERVERSION$",
];

impl Linter<'_> {
    pub(super) fn check_stamp_variables(&mut self) {
        let inf = self.inf;
        for s in &inf.sections {
            let mut spots: Vec<(usize, &str)> = vec![(s.line, s.name.as_str())];
            for e in &s.entries {
                if let Some(k) = &e.key {
                    spots.push((e.line, k.raw.as_str()));
                }
                for v in &e.values {
                    spots.push((e.line, v.raw.as_str()));
                }
            }
            let mut reported: HashSet<(usize, &str)> = HashSet::new();
            for (line, text) in spots {
                let upper = text.to_ascii_uppercase();
                for var in STAMP_VARIABLES {
                    if upper.contains(var) && reported.insert((line, var)) {
                        self.report(
                            Rule::StampVariable,
                            (var == "$ARCH$").then_some(1274),
                            line,
                            format!("{var} was not replaced: stamp the .inx before use"),
                        );
                    }
                }
            }
        }
    }

    pub(super) fn check_strings(&mut self) {
        let inf = self.inf;
        for s in inf
            .sections
            .iter()
            .filter(|s| !is_family(&s.name, "Strings"))
        {
            for e in &s.entries {
                let mut missing: Vec<String> = Vec::new();
                let fields = e.key.iter().chain(e.values.iter());
                for f in fields {
                    for token in string_tokens(&f.raw) {
                        let is_dirid = token.bytes().all(|b| b.is_ascii_digit());
                        if !is_dirid
                            && !self.strings.contains_key(&lower(token))
                            && !missing.iter().any(|m| m.eq_ignore_ascii_case(token))
                        {
                            missing.push(token.to_owned());
                        }
                    }
                }
                for token in missing {
                    self.report(
                        Rule::MissingString,
                        1235,
                        e.line,
                        format!("%{token}% has no entry in [Strings]"),
                    );
                }
            }
        }
    }

    /// InfVerif 1295: a [Strings.LCID] section with a different number of strings.
    pub(super) fn check_localized_strings(&mut self) {
        let inf = self.inf;
        let Some(base) = inf.section("Strings") else {
            return;
        };
        let count = base.entries.len();
        for s in inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "Strings") && !s.is("Strings"))
        {
            if s.entries.len() != count {
                let text = format!(
                    "[{}] has {} strings, [Strings] has {count}",
                    s.name,
                    s.entries.len()
                );
                self.report(Rule::LocalizedStrings, 1295, s.line, text);
            }
        }
    }
}

/// `%token%`s in a field (not `%%`; DIRIDs such as `%13%` included).
fn string_tokens(s: &str) -> Vec<&str> {
    let parts: Vec<&str> = s.split('%').collect();
    let n = parts.len();
    parts
        .iter()
        .enumerate()
        .skip(1)
        .step_by(2)
        .filter(|(i, p)| i.saturating_add(1) < n && !p.is_empty())
        .map(|(_, p)| *p)
        .collect()
}
