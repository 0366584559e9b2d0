//! Platform extensions (`.NTamd64`, `.NTarm64`, `[SourceDisksFiles.arm64]`):
//! whether an INF's decorations agree with each other, and with the
//! architecture of the kernel image the package ships ([`lint_for_arch`]).
//!
//! Follows Microsoft's "Creating INF Files for Multiple Platforms and
//! Operating Systems" (Windows reads `section.NT<arch>` on `<arch>` only),
//! "Combining Platform Extensions with Other Section Name Extensions" (the
//! sections of one install — `X.NT<arch>`, `X.NT<arch>.Services`, `.HW`... —
//! carry the same extension; `[SourceDisksNames.<arch>]` and
//! `[SourceDisksFiles.<arch>]` give per-platform file locations) and "INF
//! Manufacturer Section" (`NT<arch>[.os-version]` decorations of models).

use std::collections::{BTreeSet, HashSet};

use super::encoding::encoding_findings;
use super::{is_family, lower, parse_diag, run, CopiedFile, Diagnostic, Linter, Rule, Section};
use crate::arch::Arch;
use crate::parse::parse;

/// The architectures a platform extension can name (after `.NT`, or after
/// `SourceDisksFiles.` / `SourceDisksNames.`).
pub(super) const NT_ARCHES: [&str; 5] = ["amd64", "x86", "arm64", "arm", "ia64"];

/// A section name's `.NT<arch>` platform extension.
struct Platform {
    /// The architecture, lower-case, one of [`NT_ARCHES`].
    arch: &'static str,
    /// The name through the extension and its OS-version fields:
    /// `DefaultInstall.NTamd64`, `X.NTarm64.10.0...19041`.
    base: String,
    /// Whether the name goes on past `base` (`.Services`, `.HW`...): a
    /// section of the install `base` names, not the install section itself.
    related: bool,
}

/// `.NT<arch>` in a section name (not as its first component).
fn nt_platform(name: &str) -> Option<Platform> {
    let parts: Vec<&str> = name.split('.').collect();
    let (at, arch) = parts.iter().enumerate().skip(1).find_map(|(i, p)| {
        let l = lower(p);
        let rest = l.strip_prefix("nt")?;
        NT_ARCHES.iter().find(|a| **a == rest).map(|a| (i, *a))
    })?;
    let end = parts
        .iter()
        .enumerate()
        .skip(at.saturating_add(1))
        .find(|(_, p)| !is_os_version_field(p))
        .map_or(parts.len(), |(i, _)| i);
    Some(Platform {
        arch,
        base: parts.get(..end).unwrap_or(&[]).join("."),
        related: end < parts.len(),
    })
}

/// A field of `.NT<arch>.major.minor.product.suite.build`: empty, decimal
/// or `0x` hexadecimal.
fn is_os_version_field(p: &str) -> bool {
    let p = p.trim();
    p.bytes().all(|b| b.is_ascii_digit())
        || p.strip_prefix("0x")
            .or_else(|| p.strip_prefix("0X"))
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `<arch>` of `[SourceDisksFiles.<arch>]` / `[SourceDisksNames.<arch>]`.
fn disk_platform(name: &str) -> Option<&'static str> {
    if !is_family(name, "SourceDisksFiles") && !is_family(name, "SourceDisksNames") {
        return None;
    }
    let ext = lower(name.split('.').nth(1)?.trim());
    NT_ARCHES.iter().find(|a| **a == ext).copied()
}

/// The architecture of a `[Manufacturer]` decoration `NT<arch>[.os-version]`.
fn decoration_arch(decoration: &str) -> Option<&'static str> {
    let first = lower(decoration.trim().split('.').next()?);
    let rest = first.strip_prefix("nt")?;
    NT_ARCHES.iter().find(|a| **a == rest).copied()
}

impl<'a> Linter<'a> {
    /// The install sections and their related sections (as the walk found
    /// them) that carry `.NT<arch>`.
    fn decorated_installs(&self) -> Vec<(&'a Section, Platform)> {
        self.install
            .iter()
            .chain(self.services.iter())
            .filter_map(|s| nt_platform(&s.name).map(|p| (*s, p)))
            .collect()
    }

    /// (line, text, arch) of each architecture a `[Manufacturer]` entry decorates.
    fn manufacturer_decorations(&self) -> Vec<(usize, String, &'static str)> {
        self.inf
            .sections_named("Manufacturer")
            .flat_map(|s| s.entries.iter())
            .flat_map(|e| {
                e.values.iter().skip(1).filter_map(|v| {
                    decoration_arch(&v.text).map(|a| (e.line, v.text.trim().to_owned(), a))
                })
            })
            .collect()
    }

    /// InfVerif 2083 (a section Windows never reads on any platform the INF
    /// installs on) and 1230 (a copied file not listed for a platform the
    /// INF installs on).
    pub(super) fn check_arch_decorations(&mut self) {
        let decorated = self.decorated_installs();
        let bases: HashSet<String> = decorated
            .iter()
            .filter(|(_, p)| !p.related)
            .map(|(_, p)| lower(&p.base))
            .collect();
        for (s, p) in decorated.iter().filter(|(_, p)| p.related) {
            if !bases.contains(&lower(&p.base)) {
                let text = format!(
                    "[{}] is decorated for {}, but its install section [{}] does not exist: the sections of one install carry the same platform extension, so Windows never reads this one",
                    s.name, p.arch, p.base
                );
                self.report(Rule::ArchDecoration, 2083, s.line, text);
            }
        }
        let mut arches: BTreeSet<&'static str> = decorated
            .iter()
            .filter(|(_, p)| !p.related)
            .map(|(_, p)| p.arch)
            .collect();
        arches.extend(self.manufacturer_decorations().iter().map(|(_, _, a)| *a));
        if arches.is_empty() {
            // Undecorated installs are reported by undecorated-defaultinstall.
            return;
        }
        let installs_on = arches.iter().copied().collect::<Vec<_>>().join(", ");
        let inf = self.inf;
        for s in &inf.sections {
            if let Some(a) = disk_platform(&s.name).filter(|a| !arches.contains(a)) {
                let text = format!(
                    "[{}] is read only when installing on {a}, and this INF installs on {installs_on} only",
                    s.name
                );
                self.report(Rule::ArchDecoration, 2083, s.line, text);
            }
        }
        let listed_in = |section: &Section| -> Vec<String> {
            section
                .entries
                .iter()
                .filter_map(|e| e.key().map(|k| lower(&self.resolve(k.trim()))))
                .collect()
        };
        let anywhere: HashSet<String> = inf
            .sections
            .iter()
            .filter(|s| is_family(&s.name, "SourceDisksFiles"))
            .flat_map(listed_in)
            .collect();
        let mut unlisted = Vec::new();
        for a in arches {
            let for_arch: HashSet<String> = inf
                .sections
                .iter()
                .filter(|s| s.is("SourceDisksFiles") || s.is(&format!("SourceDisksFiles.{a}")))
                .flat_map(listed_in)
                .collect();
            for f in self.copied_on(a) {
                let name = lower(&f.name);
                // A file listed nowhere is copyfiles-source's finding.
                if anywhere.contains(&name) && !for_arch.contains(&name) {
                    unlisted.push((a, f));
                }
            }
        }
        for (a, f) in unlisted {
            let text = format!(
                "{} is copied when installing on {a}, but is listed neither in [SourceDisksFiles] nor in [SourceDisksFiles.{a}]",
                f.name
            );
            self.report(Rule::ArchDecoration, 1230, f.line, text);
        }
    }

    /// The files the install sections decorated for `arch` copy.
    fn copied_on(&self, arch: &str) -> Vec<CopiedFile> {
        let inf = self.inf;
        let mut out = Vec::new();
        let installs = self
            .install
            .iter()
            .filter(|s| nt_platform(&s.name).is_some_and(|p| p.arch == arch));
        for s in installs {
            for e in s.entries.iter().filter(|e| e.key_is("CopyFiles")) {
                for v in e
                    .values
                    .iter()
                    .map(|v| v.text.trim())
                    .filter(|v| !v.is_empty())
                {
                    if let Some(file) = v.strip_prefix('@') {
                        out.push(CopiedFile {
                            name: self.resolve(file.trim()),
                            line: e.line,
                        });
                    } else {
                        for list in inf.sections.iter().filter(|t| t.is(v)) {
                            out.extend(self.list_sources(list));
                        }
                    }
                }
            }
        }
        out
    }

    /// Every platform extension must be the image's architecture: on any
    /// other platform Windows would install an image it cannot load.
    pub(super) fn check_image_arch(&mut self, image: Arch) {
        let want = image.as_str();
        let why = format!(
            "the package's kernel image is {want} (PE machine {:#06X})",
            image.machine()
        );
        for (s, p) in self.decorated_installs() {
            if p.arch != want {
                let text = format!("[{}] installs on {}, but {why}", s.name, p.arch);
                self.report(Rule::ImageArch, None, s.line, text);
            }
        }
        let inf = self.inf;
        for s in &inf.sections {
            if let Some(a) = disk_platform(&s.name).filter(|a| *a != want) {
                let text = format!("[{}] lists files for {a}, but {why}", s.name);
                self.report(Rule::ImageArch, None, s.line, text);
            }
        }
        for (line, decoration, a) in self.manufacturer_decorations() {
            if a != want {
                let text = format!("[Manufacturer] decoration {decoration} is for {a}, but {why}");
                self.report(Rule::ImageArch, None, line, text);
            }
        }
        // Models without an architecture in their decoration (none, `NT`,
        // `NT.10.0`) are read on x86 only ("INF Manufacturer Section"):
        // never on an amd64 or arm64 machine.
        let undecorated: Vec<usize> = inf
            .sections_named("Manufacturer")
            .flat_map(|s| s.entries.iter())
            .filter(|e| {
                !e.value_or_empty(0).is_empty()
                    && e.values
                        .iter()
                        .skip(1)
                        .all(|v| decoration_arch(&v.text).is_none())
            })
            .map(|e| e.line)
            .collect();
        for line in undecorated {
            let text = format!(
                "[Manufacturer] entry has no {} decoration: Windows reads undecorated models on x86 only, and {why}",
                image.nt_decoration()
            );
            self.report(Rule::ImageArch, None, line, text);
        }
    }
}

/// Lints INF bytes, as [`lint_bytes`](super::lint_bytes) does, for a
/// package whose kernel image is for `image`: every rule, plus `image-arch`
/// — each `.NT<arch>` install section (and its `.Services`...),
/// `[SourceDisksFiles.<arch>]` / `[SourceDisksNames.<arch>]` section and
/// `[Manufacturer]` `NT<arch>` decoration must name `image`'s architecture,
/// and no `[Manufacturer]` entry may be undecorated (x86 only).
///
/// The caller takes `image` from the image's PE machine type with
/// [`Arch::from_machine`] (0x8664 amd64, 0xAA64 arm64; any other machine
/// is an [`ArchError`](crate::ArchError) there, before linting). Returns
/// the encoding findings first, then the others sorted by line, as
/// `lint_bytes` does; empty means clean.
pub fn lint_for_arch(bytes: &[u8], file_name: &str, image: Arch) -> Vec<Diagnostic> {
    let mut out = encoding_findings(bytes, file_name);
    match crate::parse::decode(bytes) {
        Ok(text) => out.extend(lint_text_for_arch(&text, file_name, image)),
        Err(e) => out.push(parse_diag(file_name, &e)),
    }
    out
}

/// [`lint_for_arch`] on INF text (no encoding check), as
/// [`lint`](super::lint) is to [`lint_bytes`](super::lint_bytes).
pub fn lint_text_for_arch(inf_text: &str, file_name: &str, image: Arch) -> Vec<Diagnostic> {
    match parse(inf_text) {
        Ok(inf) => run(&inf, file_name, Some(image)),
        Err(e) => vec![parse_diag(file_name, &e)],
    }
}
