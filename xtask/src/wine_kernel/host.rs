//! The Wine side of the stage: a fresh prefix, the service, weirctl.exe runs, and the
//! stand-in's test channel.

use crate::weirctl::{WINE64, WINESERVER};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the driver lives in the prefix (what `sc create` names).
pub const DRIVER_PATH: &str = "C:\\windows\\system32\\drivers\\weir.sys";
/// Where weirctl.exe and its bcryptprimitives stand-in live.
pub const TOOL_PATH: &str = "C:\\weir\\weirctl.exe";

/// One Wine prefix with the driver installed and a log of every command.
pub struct Host {
    pub prefix: PathBuf,
    log: std::fs::File,
    /// A process that keeps the prefix's system processes (services.exe, the driver host)
    /// alive: Wine ends them when no other process of the prefix runs.
    keeper: Option<Child>,
}

/// The result of one command under Wine.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Host {
    /// A fresh prefix at `prefix` (whatever was there is removed), logs in `logs`.
    pub fn create(prefix: &Path, logs: &Path) -> Result<Self> {
        if prefix.exists() {
            kill_server(prefix);
            std::fs::remove_dir_all(prefix).with_context(|| format!("removing {}", prefix.display()))?;
        }
        std::fs::create_dir_all(logs)?;
        let log = std::fs::File::create(logs.join("commands.log"))?;
        let host = Host { prefix: prefix.to_path_buf(), log, keeper: None };
        let boot = host.wine(&["wineboot", "-i"])?;
        if boot.code != 0 {
            bail!("wineboot -i failed ({}): {}", boot.code, boot.stderr);
        }
        // Let the boot's system processes and server finish, so the stage's services.exe is
        // the only one (a service created while the first one exits can be lost).
        let mut wait = Command::new(WINESERVER);
        wait.arg("-w");
        host.env(&mut wait);
        wait.status().context("waiting for wineserver")?;
        Ok(host)
    }

    fn env(&self, c: &mut Command) {
        c.env("WINEPREFIX", &self.prefix)
            // DbgPrintEx output (debugstr) and the driver host's own warnings.
            .env("WINEDEBUG", "-all,warn+debugstr,err+ntoskrnl,err+module,err+sc,err+service")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
    }

    /// `drive_c` path of a `C:\...` path.
    pub fn c_path(&self, windows: &str) -> PathBuf {
        let rel = windows.trim_start_matches("C:\\").replace('\\', "/");
        self.prefix.join("drive_c").join(rel)
    }

    /// Copies a file into the prefix at a `C:\...` path.
    pub fn install(&self, from: &Path, windows: &str) -> Result<()> {
        let to = self.c_path(windows);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(())
    }

    fn record(&mut self, args: &[&str], r: &Run, took: Duration) {
        let _ = writeln!(
            self.log,
            "$ wine {} -> {} ({} ms)\n{}{}",
            args.join(" "),
            r.code,
            took.as_millis(),
            r.stdout.chars().take(4000).collect::<String>(),
            r.stderr.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("  stderr: {l}\n")).collect::<String>()
        );
    }

    /// Runs `wine64 args...` to completion. Output goes through files, not pipes: the first
    /// Wine process of a prefix starts its system processes (services.exe, the driver hosts),
    /// which would inherit a pipe and keep it open for the life of the prefix.
    pub fn wine(&self, args: &[&str]) -> Result<Run> {
        let (out, err) = (self.scratch("out"), self.scratch("err"));
        let mut c = Command::new(WINE64);
        c.args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?);
        self.env(&mut c);
        let status = c.status().with_context(|| format!("running wine64 {}", args.join(" ")))?;
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&err);
        Ok(run)
    }

    /// A scratch file beside the prefix, unique per call (runs may overlap on threads).
    fn scratch(&self, name: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.prefix.with_file_name(format!("io-{name}-{n}.txt"))
    }

    /// Runs and logs a command.
    pub fn run(&mut self, args: &[&str]) -> Result<Run> {
        let t = Instant::now();
        let r = self.wine(args)?;
        self.record(args, &r, t.elapsed());
        Ok(r)
    }

    /// `weirctl.exe args...`.
    pub fn weirctl(&mut self, args: &[&str]) -> Result<Run> {
        let mut all = vec![TOOL_PATH];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `weirctl.exe args...` left running; its stdout goes to the returned file.
    pub fn spawn_weirctl(&self, args: &[&str]) -> Result<(Child, PathBuf)> {
        let out = self.scratch("follow");
        let mut c = Command::new(WINE64);
        c.arg(TOOL_PATH)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(Stdio::null());
        self.env(&mut c);
        Ok((c.spawn().context("starting weirctl.exe")?, out))
    }

    /// `sc args...`; fails unless it exits 0.
    pub fn sc(&mut self, args: &[&str]) -> Result<Run> {
        let mut all = vec!["sc"];
        all.extend_from_slice(args);
        let r = self.run(&all)?;
        if r.code != 0 {
            bail!("sc {} failed ({}): {}{}", args.join(" "), r.code, r.stdout, r.stderr);
        }
        Ok(r)
    }

    /// Starts a process that holds the prefix open (`fwpk-rules.exe hold`, installed by then).
    /// The driver host's messages (the driver's DbgPrintEx lines on `debugstr`) reach the
    /// stderr of the `sc start` that started it, in `commands.log`.
    pub fn hold(&mut self, exe: &str) -> Result<()> {
        let mut c = Command::new(WINE64);
        c.args([exe, "hold"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        self.env(&mut c);
        self.keeper = Some(c.spawn().context("starting the keeper process")?);
        Ok(())
    }

    /// Starts the service; returns the stand-in's channel (in a new driver host process:
    /// winedevice.exe exits when its only driver stops).
    pub fn start(&mut self) -> Result<Channel> {
        let _ = std::fs::remove_file(self.c_path("C:\\weirtest\\port.txt"));
        self.sc(&["start", "weir"])?;
        Channel::connect(&self.c_path("C:\\weirtest\\port.txt"), &self.c_path("C:\\weirtest\\refused.txt"))
    }

    /// The engine as the stand-in left it when its host exited (after the driver stopped or
    /// failed to start), from `C:\weirtest\unload.json`.
    fn unload_state(&self) -> Result<serde_json::Value> {
        let file = self.c_path("C:\\weirtest\\unload.json");
        // Normally well under a second; 60 s because a loaded two-core machine (an emulation run
        // beside this stage) once took more than 20 s to end a host whose driver failed to start.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                if let Ok(v) = serde_json::from_str(&text) {
                    return Ok(v);
                }
            }
            if Instant::now() > deadline {
                bail!("the driver host did not exit (no {})", file.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `sc start weir` expected to fail; returns its output and the engine the host left.
    pub fn start_failing(&mut self) -> Result<(Run, serde_json::Value)> {
        let _ = std::fs::remove_file(self.c_path("C:\\weirtest\\unload.json"));
        let r = self.run(&["sc", "start", "weir"])?;
        if r.code == 0 {
            return Ok((r, serde_json::Value::Null));
        }
        let state = self.unload_state()?;
        Ok((r, state))
    }

    /// `sc stop weir`; returns the engine the host left when it exited.
    pub fn stop(&mut self) -> Result<serde_json::Value> {
        let _ = std::fs::remove_file(self.c_path("C:\\weirtest\\unload.json"));
        self.sc(&["stop", "weir"])?;
        self.unload_state()
    }

    /// Appends a line to the log (a check's heading or result).
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.log, "# {text}");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut k) = self.keeper.take() {
            let _ = k.kill();
            let _ = k.wait();
        }
        kill_server(&self.prefix);
    }
}

fn kill_server(prefix: &Path) {
    let _ = Command::new(WINESERVER).arg("-k").env("WINEPREFIX", prefix).status();
}

/// The stand-in's localhost channel: one command line, one reply line.
pub struct Channel {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub port: u16,
}

impl Channel {
    /// Connects to the port the stand-in wrote (it listens from DllMain on); a port file left
    /// by an exited host is retried until the new host rewrites it.
    pub fn connect(port_file: &Path, refused_file: &Path) -> Result<Self> {
        // As `unload_state`: generous for a loaded machine, instant when things work.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(refused_file) {
                bail!("the stand-in refused weir.sys:\n{text}");
            }
            if let Ok(text) = std::fs::read_to_string(port_file) {
                if let Ok(port) = text.trim().parse::<u16>() {
                    if let Ok(ch) = Self::to_port(port) {
                        return Ok(ch);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("the fwpkclnt.sys stand-in did not open its test channel ({} not written)", port_file.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn to_port(port: u16) -> Result<Self> {
        let writer = TcpStream::connect(("127.0.0.1", port)).context("connecting to the stand-in's channel")?;
        writer.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Channel { reader: BufReader::new(writer.try_clone()?), writer, port })
    }

    /// Sends one command; returns the reply without its newline. `error ...` replies fail.
    pub fn cmd(&mut self, line: &str) -> Result<String> {
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        let mut reply = String::new();
        self.reader.read_line(&mut reply).with_context(|| format!("reply to `{line}`"))?;
        let reply = reply.trim_end().to_string();
        if reply.is_empty() || reply.starts_with("error") {
            bail!("stand-in: `{line}` -> `{reply}`");
        }
        Ok(reply)
    }

    /// The engine's state.
    pub fn state(&mut self) -> Result<serde_json::Value> {
        let text = self.cmd("state")?;
        serde_json::from_str(&text).with_context(|| format!("stand-in state: {text}"))
    }
}
