//! The WPR profile (`weir.wprp`) shipped in the package, and its check.

use anyhow::{bail, Context, Result};
use weir_etw::provider::ID_TEXT;
use weir_etw::weir::keyword;

/// The profile's text, byte for byte what `cargo xtask package` writes.
pub const WPRP_TEXT: &str = include_str!("../assets/weir.wprp");

/// One `<Profile>` after checking: what `wpr -start weir.wprp!<name>` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WprpProfile {
    /// `Name` (with `DetailLevel`, what `wpr` selects).
    pub name: String,
    /// `Verbose` or `Light`.
    pub detail_level: String,
    /// `File` or `Memory`.
    pub logging_mode: String,
    /// Level and keyword mask of each provider it enables.
    pub providers: Vec<(u8, u64)>,
}

/// Checks a WPR profile for Weir: well-formed XML with the
/// `WindowsPerformanceRecorder` root; every `EventProvider` names Weir's
/// provider id, a level 1..=5 and keywords within Weir's; every profile
/// (directly or through `Base`) references defined collectors and
/// providers. Returns the profiles.
///
/// # Errors
/// The first problem found, naming the element.
pub fn check_wprp(text: &str) -> Result<Vec<WprpProfile>> {
    let doc = roxmltree::Document::parse(text).context("weir.wprp is not well-formed XML")?;
    let root = doc.root_element();
    if root.tag_name().name() != "WindowsPerformanceRecorder" {
        bail!("weir.wprp: root element is <{}>, not <WindowsPerformanceRecorder>", root.tag_name().name());
    }
    let elements = |name: &'static str| root.descendants().filter(move |n| n.has_tag_name(name));
    let attr = |n: roxmltree::Node<'_, '_>, a: &str| -> Result<String> {
        n.attribute(a).map(str::to_string).with_context(|| format!("weir.wprp: <{}> without {a}", n.tag_name().name()))
    };
    let collectors: Vec<String> = elements("EventCollector").map(|n| attr(n, "Id")).collect::<Result<_>>()?;
    let mut providers = std::collections::HashMap::new();
    for p in elements("EventProvider") {
        let id = attr(p, "Id")?;
        let name = attr(p, "Name")?;
        if !name.trim_start_matches('{').trim_end_matches('}').eq_ignore_ascii_case(ID_TEXT) {
            bail!("weir.wprp: provider {id} names {name}, not Weir's {ID_TEXT}");
        }
        let level: u8 = attr(p, "Level")?.parse().with_context(|| format!("weir.wprp: provider {id}: Level"))?;
        if !(1..=5).contains(&level) {
            bail!("weir.wprp: provider {id}: level {level} outside 1..=5");
        }
        let mut mask = 0u64;
        for k in p.descendants().filter(|n| n.has_tag_name("Keyword")) {
            let v = attr(k, "Value")?;
            let v = u64::from_str_radix(v.trim_start_matches("0x").trim_start_matches("0X"), 16)
                .with_context(|| format!("weir.wprp: provider {id}: keyword {v}"))?;
            mask |= v;
        }
        if mask == 0 || mask & !keyword::ALL != 0 {
            bail!("weir.wprp: provider {id}: keywords {mask:#x} not a non-empty subset of Weir's {:#x}", keyword::ALL);
        }
        providers.insert(id, (level, mask));
    }
    let mut out = Vec::new();
    let profiles: Vec<_> = elements("Profile").collect();
    for p in &profiles {
        let id = attr(*p, "Id")?;
        // A profile with Base inherits its collectors.
        let source = match p.attribute("Base") {
            Some(base) => *profiles
                .iter()
                .find(|q| q.attribute("Id") == Some(base))
                .with_context(|| format!("weir.wprp: profile {id}: Base {base} is not defined"))?,
            None => *p,
        };
        let mut used = Vec::new();
        for c in source.descendants().filter(|n| n.has_tag_name("EventCollectorId")) {
            let v = attr(c, "Value")?;
            if !collectors.contains(&v) {
                bail!("weir.wprp: profile {id}: collector {v} is not defined");
            }
            for e in c.descendants().filter(|n| n.has_tag_name("EventProviderId")) {
                let v = attr(e, "Value")?;
                used.push(*providers.get(&v).with_context(|| format!("weir.wprp: profile {id}: provider {v} is not defined"))?);
            }
        }
        if used.is_empty() {
            bail!("weir.wprp: profile {id} enables no provider");
        }
        out.push(WprpProfile {
            name: attr(*p, "Name")?,
            detail_level: attr(*p, "DetailLevel")?,
            logging_mode: attr(*p, "LoggingMode")?,
            providers: used,
        });
    }
    if out.is_empty() {
        bail!("weir.wprp: no <Profile>");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profile_records_weir_verbose_and_light_to_file_and_memory() {
        let profiles = check_wprp(WPRP_TEXT).unwrap();
        let shape: Vec<_> = profiles.iter().map(|p| (p.name.as_str(), p.detail_level.as_str(), p.logging_mode.as_str())).collect();
        assert_eq!(
            shape,
            [("Weir", "Verbose", "File"), ("Weir", "Verbose", "Memory"), ("Weir", "Light", "File"), ("Weir", "Light", "Memory")]
        );
        assert_eq!(profiles[0].providers, [(5, keyword::ALL)]);
        assert_eq!(profiles[2].providers, [(4, keyword::ALL & !keyword::CONNECTIONS)]);
    }

    #[test]
    fn broken_profiles_are_refused_with_the_element_named() {
        let cases = [
            (WPRP_TEXT.replace("29506611-661d-5855-fb09-d04b2205cbb1\" Level=\"5\"", "00000000-0000-0000-0000-000000000000\" Level=\"5\""), "not Weir's"),
            (WPRP_TEXT.replace("Value=\"0x3F\"", "Value=\"0x40\""), "keywords 0x40"),
            (WPRP_TEXT.replace("<EventProviderId Value=\"EventProvider_Weir_All\"/>", "<EventProviderId Value=\"Nope\"/>"), "provider Nope"),
            (WPRP_TEXT.replace("Base=\"Weir.Light.File\"", "Base=\"Missing\""), "Base Missing"),
            (WPRP_TEXT.replace("</Profiles>", ""), "well-formed"),
        ];
        for (text, want) in cases {
            let err = check_wprp(&text).unwrap_err();
            assert!(format!("{err:#}").contains(want), "{err:#} lacks {want}");
        }
    }
}
