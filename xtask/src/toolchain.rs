//! The cross toolchain of the Linux flow, found, checked and installed.
//!
//! rustup's toolchains here have no std/core for `x86_64-pc-windows-msvc` and
//! cannot download one, so the image is built with Debian's `rustc-web`
//! compiler and its matching library source (`rust-web-src`) through
//! `-Zbuild-std`, and linked with rustup's `rust-lld` in link.exe mode.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages the cross builds and their tests need: the compiler and library source
/// (driver and weirctl.exe), mingw-w64 (weirctl.exe's linker), Wine (weirctl.exe's tests).
pub const BUILD_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "gcc-mingw-w64-x86-64", "wine64"];

/// Everything the cross build invokes.
pub struct Toolchain {
    pub rustc: PathBuf,
    pub cargo: PathBuf,
    pub lld: PathBuf,
    pub version: String,
}

fn dpkg_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Version}", package]).output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Installs Debian packages when running as root; otherwise fails with the
/// exact command to run.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| dpkg_version(p).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_root() {
        bail!("missing Debian packages {missing:?}; run as root:\n    sudo sh -c '{command}'");
    }
    println!("installing {missing:?} (as root)");
    let status = Command::new("sh")
        .args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {command} >/dev/null")])
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("`{command}` failed ({status})");
    }
    Ok(())
}

fn package_file(package: &str, suffix: &str) -> Option<PathBuf> {
    let out = Command::new("dpkg").args(["-L", package]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with(suffix) && Path::new(l).is_file())
        .map(PathBuf::from)
}

/// rustup's rust-lld (present in every rustup toolchain).
fn find_lld() -> Result<PathBuf> {
    if let Ok(explicit) = std::env::var("WEIR_LLD") {
        return Ok(PathBuf::from(explicit));
    }
    let out = Command::new("rustc").args(["--print", "sysroot"]).env_remove("RUSTC").output();
    if let Ok(out) = out {
        let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let lld = sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld");
        if lld.is_file() {
            return Ok(lld);
        }
    }
    for candidate in ["/usr/bin/lld-link-22", "/usr/lib/llvm-22/bin/lld-link"] {
        if Path::new(candidate).is_file() {
            return Ok(PathBuf::from(candidate));
        }
    }
    bail!("no rust-lld found in the rustup toolchain and no lld-22; install `lld-22` or set WEIR_LLD")
}

/// Finds (installing if allowed) and checks the cross toolchain.
pub fn cross_toolchain() -> Result<Toolchain> {
    ensure_packages(BUILD_PACKAGES)?;
    let rustc = package_file("rustc-web", "/bin/rustc").context("rustc-web installs no rustc")?;
    let cargo = package_file("cargo-web", "/bin/cargo").context("cargo-web installs no cargo")?;
    let compiler = dpkg_version("rustc-web").unwrap_or_default();
    let source = dpkg_version("rust-web-src").unwrap_or_default();
    if compiler != source {
        bail!(
            "rustc-web {compiler} and rust-web-src {source} differ: -Zbuild-std needs the library \
             source of the same compiler; run `apt-get install rustc-web rust-web-src` to align them"
        );
    }
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().context("running rustc-web")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let library = sysroot.join("lib/rustlib/src/rust/library");
    if !library.join("core").is_dir() {
        bail!("library source missing at {} (package rust-web-src)", library.display());
    }
    // Same check from the other side: the source's release notes name the
    // compiler's version.
    let version_line = Command::new(&rustc).arg("-V").output().context("rustc -V")?;
    let version = String::from_utf8_lossy(&version_line.stdout).split_whitespace().nth(1).unwrap_or("").to_string();
    if let Ok(notes) = std::fs::read_to_string(sysroot.join("lib/rustlib/src/rust/RELEASES.md")) {
        let first = notes.lines().find(|l| l.starts_with("Version ")).unwrap_or("");
        if !first.contains(&format!("Version {version} ")) {
            bail!("library source is for `{first}` but the compiler is {version}");
        }
    }
    Ok(Toolchain { rustc, cargo, lld: find_lld()?, version })
}

/// osslsigncode (signing and independent verification), 2.x. Debian 12's
/// own 2.5 lacks fixes the package needs; bookworm-backports has 2.9.
pub fn osslsigncode() -> Result<PathBuf> {
    let found = |path: &str| {
        Command::new(path)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr))
    };
    if let Some(text) = found("osslsigncode") {
        let version = text.split_whitespace().nth(1).unwrap_or("").trim_end_matches(',').to_string();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (2, 7) {
            return Ok(PathBuf::from("osslsigncode"));
        }
        println!("osslsigncode {version} is too old (need 2.7 or later)");
    }
    let codename = apt::os_codename(&std::fs::read_to_string("/etc/os-release").unwrap_or_default())
        .context("no VERSION_CODENAME in /etc/os-release: osslsigncode 2.7+ must be installed by hand")?;
    let sources = apt::read_system_sources();
    let plan = apt::backports_source(&sources, &codename)?;
    let install = format!("apt-get update && apt-get install -y -t {} osslsigncode", plan.suite);
    if !is_root() {
        let mut how = String::new();
        if let Some(stanza) = &plan.new_stanza {
            how.push_str(&format!("add to {}:\n{stanza}\n", apt::BACKPORTS_FILE));
        }
        bail!("osslsigncode 2.7+ is needed; as root, {how}then run:\n    {install}");
    }
    if let Some(stanza) = &plan.new_stanza {
        println!("adding {} (derived from this machine's {} source)", plan.suite, codename);
        std::fs::write(apt::BACKPORTS_FILE, stanza)
            .with_context(|| format!("writing {}", apt::BACKPORTS_FILE))?;
    }
    println!("installing osslsigncode from {} (as root)", plan.suite);
    let status = Command::new("sh")
        .args(["-c", &format!("export DEBIAN_FRONTEND=noninteractive; {install} >/dev/null")])
        .status()
        .context("running apt-get")?;
    if !status.success() || found("osslsigncode").is_none() {
        bail!("installing osslsigncode failed; run: {install}");
    }
    Ok(PathBuf::from("osslsigncode"))
}

/// cargo-make, pinned: the version the Windows workflow installs, at least
/// wdk-build 0.6.0's `min_version` (0.37.16); `wdk_flow` tests check both.
pub const CARGO_MAKE_VERSION: &str = "0.37.24";

/// cargo-make for the WDK flow's task-graph check, installed with
/// `cargo install --locked` when missing or of another version (no root
/// needed). Without default features: the check needs no TLS. Returns the
/// cargo to run it through, as users do: `cargo make ...`.
pub fn cargo_make() -> Result<PathBuf> {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let wanted = format!("cargo-make {CARGO_MAKE_VERSION}");
    let installed = || {
        Command::new(&cargo)
            .args(["make", "--version"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match installed() {
        Some(v) if v == wanted => return Ok(cargo),
        Some(v) => println!("found {v}, want {wanted}"),
        None => println!("cargo-make not found"),
    }
    let args = ["install", "--locked", "cargo-make", "--version", CARGO_MAKE_VERSION, "--no-default-features"];
    println!("running: cargo {}", args.join(" "));
    let status = Command::new(&cargo).args(args).status().context("running cargo install")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    match installed() {
        Some(v) if v == wanted => Ok(cargo),
        other => bail!("after installing, `cargo make --version` gives {other:?}: is cargo's bin directory on PATH?"),
    }
}

/// The backports source, derived from the machine's own apt configuration
/// rather than from a mirror written into this repository: whichever mirror
/// (and key) the machine already trusts for its release also serves the
/// release's `-backports` suite (Debian's archive layout: a mirror of
/// `<codename>` carries `<codename>-backports` beside it).
pub mod apt {
    use anyhow::{bail, Result};
    use apt_sources::{legacy::LegacyRepositories, Repositories, Repository, RepositoryType};
    use std::path::{Path, PathBuf};

    /// Where `cargo xtask setup` writes the backports source it derives.
    pub const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/weir-backports.sources";

    /// What to do so apt can install from `suite`.
    #[derive(Debug, PartialEq, Eq)]
    pub struct BackportsPlan {
        /// `<codename>-backports`, for `apt-get install -t`.
        pub suite: String,
        /// The deb822 stanza to add, or `None` when a source of `suite`
        /// is already configured and enabled.
        pub new_stanza: Option<String>,
    }

    /// `VERSION_CODENAME` of an os-release file (os-release(5)).
    pub fn os_codename(os_release: &str) -> Option<String> {
        os_release.lines().find_map(|line| {
            let value = line.strip_prefix("VERSION_CODENAME=")?;
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            (!value.is_empty()).then(|| value.to_string())
        })
    }

    /// Parses one apt source file: deb822 for `*.sources`, one-line format
    /// for `sources.list` and `*.list` (sources.list(5)). Other names (apt
    /// ignores them too, e.g. `*.disabled`) give `None`.
    pub fn parse_source_file(path: &Path, text: &str) -> Option<Result<Vec<Repository>>> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".sources") {
            Some(
                text.parse::<Repositories>()
                    .map(|r| r.iter().cloned().collect())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            )
        } else if name == "sources.list" || name.ends_with(".list") {
            Some(
                text.parse::<LegacyRepositories>()
                    .map(|r| Repositories::from(r).iter().cloned().collect())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            )
        } else {
            None
        }
    }

    /// The machine's apt sources, in apt's reading order; unreadable or
    /// unparsable files are reported and skipped.
    pub fn read_system_sources() -> Vec<Repository> {
        let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
        if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
            let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
            more.sort();
            files.extend(more);
        }
        let mut all = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            match parse_source_file(&file, &text) {
                Some(Ok(repos)) => all.extend(repos),
                Some(Err(e)) => eprintln!("warning: skipping apt source {e:#}"),
                None => {}
            }
        }
        all
    }

    fn usable(repo: &Repository) -> bool {
        repo.enabled != Some(false) && repo.types.contains(&RepositoryType::Binary) && !repo.uris.is_empty()
    }

    /// Decides how to reach `<codename>-backports` from `sources`: nothing
    /// to add if an enabled binary source of that suite exists; otherwise a
    /// copy of the first enabled binary source of the release itself (suite
    /// exactly `codename`, with component `main`) with the suite replaced,
    /// keeping its mirror, key (`Signed-By`) and architectures. The security
    /// archive (`<codename>-security`) is never the model: it carries no
    /// backports.
    pub fn backports_source(sources: &[Repository], codename: &str) -> Result<BackportsPlan> {
        let suite = format!("{codename}-backports");
        if sources.iter().any(|r| usable(r) && r.suites.contains(&suite)) {
            return Ok(BackportsPlan { suite, new_stanza: None });
        }
        let Some(release) = sources.iter().find(|r| {
            usable(r)
                && r.suites.iter().any(|s| s == codename)
                && r.components.as_deref().unwrap_or_default().iter().any(|c| c == "main")
        }) else {
            bail!(
                "no enabled `deb` source for Debian {codename} (component main) in /etc/apt/sources.list \
                 or /etc/apt/sources.list.d: cannot derive {suite}; add a {suite} source by hand"
            );
        };
        let mut backports = release.clone();
        backports.enabled = None;
        backports.types = [RepositoryType::Binary].into_iter().collect();
        backports.suites = vec![suite.clone()];
        backports.components = Some(vec!["main".to_string()]);
        let mut stanza = Repositories::new([backports]).to_string();
        if !stanza.ends_with('\n') {
            stanza.push('\n');
        }
        Ok(BackportsPlan { suite, new_stanza: Some(stanza) })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        // Mirrors are `.invalid` hosts (RFC 2606): the derivation must carry
        // whatever mirror the machine uses, so the tests use none we know.
        const DEB822: &str = "\
Types: deb
# a snapshot note, as Debian's container images have
URIs: http://mirror.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

        const ONE_LINE: &str = "\
# deb http://old.example.invalid/debian bookworm main
deb-src http://src.example.invalid/debian bookworm main
deb http://security.example.invalid/debian-security bookworm-security main
deb [arch=amd64 signed-by=/etc/apt/keyrings/local.gpg] http://local.example.invalid/debian bookworm main contrib non-free-firmware
deb http://local.example.invalid/debian bookworm-updates main
";

        fn parse(name: &str, text: &str) -> Vec<Repository> {
            parse_source_file(Path::new(name), text).unwrap().unwrap()
        }

        fn stanza(plan: &BackportsPlan) -> Vec<Repository> {
            parse("x.sources", plan.new_stanza.as_deref().unwrap())
        }

        #[test]
        fn os_release_codename() {
            let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
            assert_eq!(os_codename(text).as_deref(), Some("bookworm"));
            assert_eq!(os_codename("VERSION_CODENAME=\"trixie\"\n").as_deref(), Some("trixie"));
            assert_eq!(os_codename("ID=debian\nVERSION_CODENAME=\n"), None);
        }

        #[test]
        fn deb822_release_source_gives_backports_on_the_same_mirror_and_key() {
            let plan = backports_source(&parse("debian.sources", DEB822), "bookworm").unwrap();
            assert_eq!(plan.suite, "bookworm-backports");
            let new = stanza(&plan);
            assert_eq!(new.len(), 1);
            assert_eq!(new[0].uris[0].as_str(), "http://mirror.example.invalid/debian");
            assert_eq!(new[0].suites, ["bookworm-backports"]);
            assert_eq!(new[0].components.as_deref(), Some(&["main".to_string()][..]));
            assert!(new[0].types.contains(&RepositoryType::Binary) && new[0].types.len() == 1);
            let text = plan.new_stanza.unwrap();
            assert!(text.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"), "{text}");
        }

        #[test]
        fn one_line_source_skips_comments_deb_src_and_security() {
            let plan = backports_source(&parse("sources.list", ONE_LINE), "bookworm").unwrap();
            let new = stanza(&plan);
            assert_eq!(new[0].uris[0].as_str(), "http://local.example.invalid/debian");
            assert_eq!(new[0].suites, ["bookworm-backports"]);
            assert_eq!(new[0].architectures.as_deref(), Some(&["amd64".to_string()][..]));
            assert!(plan.new_stanza.unwrap().contains("/etc/apt/keyrings/local.gpg"));
        }

        #[test]
        fn existing_backports_source_adds_nothing() {
            let mut sources = parse("debian.sources", DEB822);
            sources.extend(parse("b.list", "deb http://mirror.example.invalid/debian bookworm-backports main\n"));
            let plan = backports_source(&sources, "bookworm").unwrap();
            assert_eq!(plan, BackportsPlan { suite: "bookworm-backports".into(), new_stanza: None });
        }

        #[test]
        fn disabled_backports_source_does_not_count() {
            let disabled = "Types: deb\nURIs: http://mirror.example.invalid/debian\nSuites: bookworm-backports\nComponents: main\nEnabled: no\n";
            let mut sources = parse("b.sources", disabled);
            sources.extend(parse("debian.sources", DEB822));
            assert!(backports_source(&sources, "bookworm").unwrap().new_stanza.is_some());
        }

        #[test]
        fn no_release_source_is_a_clear_error() {
            let only_security = parse("s.list", "deb http://security.example.invalid/debian-security bookworm-security main\n");
            let err = backports_source(&only_security, "bookworm").unwrap_err().to_string();
            assert!(err.contains("no enabled `deb` source for Debian bookworm"), "{err}");
            // Another release's source is not this one's.
            let other = parse("o.list", "deb http://mirror.example.invalid/debian trixie main\n");
            assert!(backports_source(&other, "bookworm").is_err());
        }

        #[test]
        fn file_names_apt_ignores_are_ignored() {
            assert!(parse_source_file(Path::new("/x/nodesource.sources.disabled"), DEB822).is_none());
            assert!(parse_source_file(Path::new("/x/sources.list.save"), ONE_LINE).is_none());
        }
    }
}

/// `cargo xtask setup`.
pub fn setup() -> Result<()> {
    let tc = cross_toolchain()?;
    println!("cross compiler: {} ({})", tc.rustc.display(), tc.version);
    println!("cross cargo:    {}", tc.cargo.display());
    println!("linker:         {}", tc.lld.display());
    println!("osslsigncode:   {}", osslsigncode()?.display());
    cargo_make()?;
    println!("cargo-make:     {CARGO_MAKE_VERSION} (WDK flow task-graph check)");
    Ok(())
}
