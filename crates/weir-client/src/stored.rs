//! The stored policy: the file the driver reads at start and on reload, its atomic
//! replacement, and the two requests that go with it (`GET_POLICY_STATUS`,
//! `RELOAD_POLICY`).
//!
//! The file is `%SystemRoot%\System32\drivers\weir\weir.policy`; its format is
//! [`weir_abi::stored`] (a 64-byte header with the payload's SHA-256, then the policy wire
//! blob). [`encode`] is what `weirctl policy compile` writes and what `weirctl policy load`
//! stores, so the two are byte-identical for the same policy.
//!
//! Writing is atomic: the bytes go to a temporary file in the same directory, are flushed
//! to disk, and the temporary file is renamed over the stored one (a same-volume rename
//! replaces the directory entry in one step), so a crash or power loss at any point leaves
//! the old file or the new file, never a mix. A reader that opened the old file keeps
//! reading the old bytes.

use crate::client::{Client, Transport};
use crate::error::ClientError;
use crate::proto::{Completion, Request};
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use weir_abi::policy::{SetPolicyReply, SET_POLICY_REPLY_SIZE};
use weir_abi::policy_status::{PolicyStatus, POLICY_STATUS_SIZE};
use weir_abi::stored::{StoredError, StoredHeader};
use weir_abi::{
    IOCTL_WEIR_GET_POLICY_STATUS, IOCTL_WEIR_RELOAD_POLICY, STATUS_INVALID_DEVICE_REQUEST,
    STATUS_SUCCESS,
};
use weir_policy::limits::MAX_BLOB_BYTES;

/// File name of the stored policy.
pub const FILE_NAME: &str = "weir.policy";

/// The stored file for a policy wire `blob`: header (with the blob's SHA-256), then the blob.
pub fn encode(blob: &[u8]) -> Vec<u8> {
    let header = StoredHeader::for_payload(blob).to_bytes();
    let mut out = Vec::with_capacity(header.len() + blob.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(blob);
    out
}

/// Checks a stored file as the driver does (header, length, limit, checksum) and returns
/// its payload, the policy wire blob.
pub fn decode(file: &[u8]) -> Result<&[u8], StoredError> {
    weir_abi::stored::decode(file, MAX_BLOB_BYTES).map(|(_, payload)| payload)
}

/// The SHA-256 of a blob as lower-case hex: what `weirctl status` prints, and what
/// `Get-FileHash`/`sha256sum` print for the same bytes.
pub fn hash_hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the driver reads its stored policy: `%SystemRoot%\System32\drivers\weir\weir.policy`
/// (`\SystemRoot\System32\drivers\weir\weir.policy` in the driver). `None` off Windows.
pub fn default_path() -> Option<PathBuf> {
    if !cfg!(windows) {
        return None;
    }
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    Some(
        PathBuf::from(root)
            .join("System32")
            .join("drivers")
            .join("weir")
            .join(FILE_NAME),
    )
}

/// Writes `bytes` to `path` atomically (see the module documentation). The directory must
/// exist (the install creates it with its access rules; this function never creates it, so
/// it never creates a directory with default, weaker permissions).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // On disk before the rename makes it visible under the real name.
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // NTFS journals the rename itself; a directory cannot be opened with std to flush it.
    Ok(())
}

/// Deletes the stored policy; `Ok(false)` when there was none.
pub fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn unknown_request(name: &'static str) -> ClientError {
    ClientError::AbiMismatch {
        what: name,
        detail: "the driver does not know this request (it predates the stored policy)".into(),
        upgrade: crate::error::Upgrade::Driver,
    }
}

/// Decodes a `GET_POLICY_STATUS` completion.
pub fn decode_policy_status(c: &Completion) -> Result<PolicyStatus, ClientError> {
    const NAME: &str = "get policy status";
    match c.status {
        STATUS_SUCCESS => {}
        STATUS_INVALID_DEVICE_REQUEST => return Err(unknown_request(NAME)),
        s => return Err(ClientError::from_status(NAME, s)),
    }
    PolicyStatus::decode(&c.output).map_err(|e| ClientError::AbiMismatch {
        what: NAME,
        detail: e.to_string(),
        upgrade: crate::error::Upgrade::Tool,
    })
}

/// Decodes a `RELOAD_POLICY` completion. A refusal of the stored file is
/// [`ClientError::Status`] with the driver's reason (see `weir_abi::status::describe`).
pub fn decode_reload(c: &Completion) -> Result<SetPolicyReply, ClientError> {
    const NAME: &str = "reload policy";
    match c.status {
        STATUS_SUCCESS => {}
        STATUS_INVALID_DEVICE_REQUEST => return Err(unknown_request(NAME)),
        s => return Err(ClientError::from_status(NAME, s)),
    }
    SetPolicyReply::decode(&c.output).ok_or_else(|| ClientError::Malformed {
        request: NAME,
        detail: format!("{} bytes, not a set-policy reply", c.output.len()),
    })
}

impl<T: Transport> Client<T> {
    /// Which policy is active, its source, hash and load time, and the last stored read.
    pub fn policy_status(&self) -> Result<PolicyStatus, ClientError> {
        let r = Request {
            name: "get policy status",
            code: IOCTL_WEIR_GET_POLICY_STATUS,
            input: Vec::new(),
            output_len: POLICY_STATUS_SIZE,
        };
        decode_policy_status(&self.transport().call(&r)?)
    }

    /// Makes the driver read the stored policy again and activate it.
    pub fn reload_policy(&self) -> Result<SetPolicyReply, ClientError> {
        let r = Request {
            name: "reload policy",
            code: IOCTL_WEIR_RELOAD_POLICY,
            input: Vec::new(),
            output_len: SET_POLICY_REPLY_SIZE,
        };
        decode_reload(&self.transport().call(&r)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use weir_abi::stored::Corruption;
    use weir_policy::{wire, Action, Policy, Rule};

    fn blob() -> Vec<u8> {
        let p = Policy {
            rules: vec![Rule::any(1, Action::Block)],
            ..Policy::permit_all()
        };
        wire::encode(&p).unwrap()
    }

    #[test]
    fn stored_form_round_trips_and_carries_the_blob_unchanged() {
        let b = blob();
        let file = encode(&b);
        assert_eq!(file.len(), 64 + b.len());
        assert_eq!(&file[..8], b"WEIRSTOR");
        assert_eq!(decode(&file).unwrap(), &b[..]);
        let payload = decode(&file).unwrap();
        assert_eq!(wire::decode(payload).unwrap(), wire::decode(&b).unwrap());
        let mut bad = file.clone();
        bad[70] ^= 1;
        assert_eq!(
            decode(&bad),
            Err(StoredError::Corrupted(Corruption::Checksum))
        );
    }

    #[test]
    fn hash_is_lower_hex_of_sha256() {
        let d = weir_abi::stored::sha256(b"abc");
        assert_eq!(
            hash_hex(&d),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("weir-stored-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        // A missing directory is an error, not a directory created with default permissions.
        let missing = dir.join("absent").join(FILE_NAME);
        assert_eq!(
            write_atomic(&missing, b"x").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(!dir.join("absent").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = std::env::temp_dir().join(format!("weir-stored-keep-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        write_atomic(&path, b"old").unwrap();
        // The target is a directory: the rename fails after the temporary was written.
        let target_dir = dir.join("as-dir");
        fs::create_dir_all(target_dir.join("x")).unwrap();
        assert!(write_atomic(&target_dir, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    struct Fixed(Completion);
    impl Transport for Fixed {
        fn call(&self, _r: &Request) -> Result<Completion, ClientError> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn reload_refusals_carry_the_drivers_reason_and_status_decodes() {
        let refused = Client::new(Fixed(Completion {
            status: weir_abi::STATUS_WEIR_STORED_CORRUPTED,
            output: vec![],
        }));
        let e = refused.reload_policy().unwrap_err();
        assert!(e.to_string().contains("corrupted"), "{e}");
        let old = Client::new(Fixed(Completion {
            status: STATUS_INVALID_DEVICE_REQUEST,
            output: vec![],
        }));
        assert!(matches!(
            old.policy_status().unwrap_err(),
            ClientError::AbiMismatch { .. }
        ));
        let mut out = vec![0u8; 96];
        PolicyStatus {
            generation: 4,
            source: 1,
            ..Default::default()
        }
        .encode_into(&mut out)
        .unwrap();
        let ok = Client::new(Fixed(Completion {
            status: 0,
            output: out,
        }));
        let s = ok.policy_status().unwrap();
        assert_eq!((s.generation, s.source_name()), (4, "stored"));
    }
}
