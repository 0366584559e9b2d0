//! The bytes of each request to the control device and the decoding of each reply,
//! independent of how they travel (a Windows handle, or the emulated driver in tests).
//!
//! Layouts and codes come from `weir-abi` (shared with the driver); the policy blob from
//! `weir-policy`. A request is an IOCTL code, an input buffer and an output buffer size
//! (`METHOD_BUFFERED`); a reply is the completion's NTSTATUS and the `Information` bytes
//! of the output buffer.

use crate::error::{ClientError, Upgrade, STATUS_INVALID_BUFFER_SIZE};
use weir_abi::policy::{
    decode_policy_reply, PolicyReplyError, SetPolicyReply, POLICY_REPLY_HEADER_SIZE,
    SET_POLICY_REPLY_SIZE,
};
use weir_abi::stats::{
    decode_reply, reply_size, RuleHits, StatsError, StatsHeader, STATS_ABI_VERSION,
    STATS_HEADER_SIZE,
};
use weir_abi::{
    IOCTL_WEIR_GET_POLICY, IOCTL_WEIR_GET_STATS, IOCTL_WEIR_READ_EVENTS, IOCTL_WEIR_SET_POLICY,
    STATUS_BUFFER_OVERFLOW, STATUS_INVALID_DEVICE_REQUEST, STATUS_SUCCESS,
};
use weir_policy::limits::MAX_BLOB_BYTES;

/// One buffered IOCTL request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Short name for messages and test vectors ("get stats").
    pub name: &'static str,
    /// The IOCTL code.
    pub code: u32,
    /// Input buffer.
    pub input: Vec<u8>,
    /// Output buffer size in bytes.
    pub output_len: usize,
}

/// The completion of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The raw NTSTATUS (`IO_STATUS_BLOCK.Status`).
    pub status: u32,
    /// The first `IO_STATUS_BLOCK.Information` bytes of the output buffer.
    pub output: Vec<u8>,
}

/// What a decoder makes of a completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<T> {
    /// The whole reply.
    Done(T),
    /// The output buffer was too small: repeat with this many bytes.
    Retry(usize),
}

/// Rule-hit entries asked for in the first stats request; more cost a second request.
pub const STATS_FIRST_RULES: usize = 256;
/// Blob bytes asked for in the first get-policy request.
pub const POLICY_FIRST_BYTES: usize = 64 * 1024;
/// Output buffer of one event read (whole records up to this many bytes).
pub const EVENTS_BUFFER_BYTES: usize = 64 * 1024;

/// `IOCTL_WEIR_GET_STATS` with room for `rules` rule-hit entries.
pub fn stats_request(rules: usize) -> Request {
    let size = reply_size(rules).map_or(STATS_HEADER_SIZE, |s| s as usize);
    Request {
        name: "get stats",
        code: IOCTL_WEIR_GET_STATS,
        input: Vec::new(),
        output_len: size,
    }
}

/// `IOCTL_WEIR_SET_POLICY` with `blob` (empty = clear).
pub fn set_policy_request(blob: Vec<u8>) -> Result<Request, ClientError> {
    if blob.len() > MAX_BLOB_BYTES {
        return Err(ClientError::PolicyTooLarge {
            bytes: blob.len(),
            limit: MAX_BLOB_BYTES,
        });
    }
    let name = if blob.is_empty() {
        "clear policy"
    } else {
        "set policy"
    };
    Ok(Request {
        name,
        code: IOCTL_WEIR_SET_POLICY,
        input: blob,
        output_len: SET_POLICY_REPLY_SIZE,
    })
}

/// `IOCTL_WEIR_GET_POLICY` with room for `blob_bytes` bytes of blob.
pub fn get_policy_request(blob_bytes: usize) -> Request {
    Request {
        name: "get policy",
        code: IOCTL_WEIR_GET_POLICY,
        input: Vec::new(),
        output_len: POLICY_REPLY_HEADER_SIZE.saturating_add(blob_bytes),
    }
}

/// `IOCTL_WEIR_READ_EVENTS` with an output buffer of `bytes`.
pub fn read_events_request(bytes: usize) -> Request {
    Request {
        name: "read events",
        code: IOCTL_WEIR_READ_EVENTS,
        input: Vec::new(),
        output_len: bytes,
    }
}

/// A decoded statistics reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The fixed part: version, generation, per-layer counters, event drops.
    pub header: StatsHeader,
    /// Per-rule hit counters of the active policy, in rule order.
    pub rules: Vec<RuleHits>,
}

fn unknown_request(name: &'static str) -> ClientError {
    ClientError::AbiMismatch {
        what: name,
        detail: "the driver does not know this request".into(),
        upgrade: Upgrade::Driver,
    }
}

/// Decodes a stats completion.
pub fn decode_stats(c: &Completion) -> Result<Reply<Stats>, ClientError> {
    const NAME: &str = "get stats";
    match c.status {
        STATUS_SUCCESS | STATUS_BUFFER_OVERFLOW => {}
        // A stats-ABI-v1 driver refuses any output buffer but its own 112 bytes.
        STATUS_INVALID_BUFFER_SIZE => {
            return Err(ClientError::AbiMismatch {
                what: "statistics",
                detail: format!("the driver refused a {STATS_HEADER_SIZE}-byte v{STATS_ABI_VERSION} buffer, so it speaks stats ABI v1"),
                upgrade: Upgrade::Driver,
            })
        }
        STATUS_INVALID_DEVICE_REQUEST => return Err(unknown_request(NAME)),
        s => return Err(ClientError::from_status(NAME, s)),
    }
    match decode_reply(&c.output) {
        Ok(r) => Ok(Reply::Done(Stats {
            header: r.header,
            rules: r.rules().collect(),
        })),
        Err(StatsError::Truncated { needed, .. }) => Ok(Reply::Retry(needed as usize)),
        Err(StatsError::AbiVersion { found }) => Err(ClientError::AbiMismatch {
            what: "statistics",
            detail: format!("driver sends v{found}, this tool reads v{STATS_ABI_VERSION}"),
            upgrade: if found < STATS_ABI_VERSION {
                Upgrade::Driver
            } else {
                Upgrade::Tool
            },
        }),
        Err(e) => Err(ClientError::Malformed {
            request: NAME,
            detail: e.to_string(),
        }),
    }
}

/// Decodes a set-policy (or clear) completion.
pub fn decode_set_policy(c: &Completion) -> Result<SetPolicyReply, ClientError> {
    const NAME: &str = "set policy";
    match c.status {
        STATUS_SUCCESS => {}
        STATUS_INVALID_DEVICE_REQUEST => return Err(unknown_request(NAME)),
        s => return Err(ClientError::from_status(NAME, s)),
    }
    SetPolicyReply::decode(&c.output).ok_or_else(|| ClientError::Malformed {
        request: NAME,
        detail: format!(
            "{} bytes, not a set-policy reply v{}",
            c.output.len(),
            weir_abi::policy::POLICY_ABI_VERSION
        ),
    })
}

/// The active policy as the driver returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivePolicy {
    /// Generation: 0 before the first set, +1 per set or clear.
    pub generation: u64,
    /// The blob, byte-identical to what was set (empty when none is loaded).
    pub blob: Vec<u8>,
}

/// Decodes a get-policy completion.
pub fn decode_get_policy(c: &Completion) -> Result<Reply<ActivePolicy>, ClientError> {
    const NAME: &str = "get policy";
    match c.status {
        STATUS_SUCCESS | STATUS_BUFFER_OVERFLOW => {}
        STATUS_INVALID_DEVICE_REQUEST => return Err(unknown_request(NAME)),
        s => return Err(ClientError::from_status(NAME, s)),
    }
    match decode_policy_reply(&c.output) {
        Ok((h, blob)) => Ok(Reply::Done(ActivePolicy {
            generation: h.generation,
            blob: blob.to_vec(),
        })),
        Err(PolicyReplyError::Truncated { needed, .. }) => Ok(Reply::Retry(needed as usize)),
        Err(PolicyReplyError::AbiVersion { found }) => Err(ClientError::AbiMismatch {
            what: "policy",
            detail: format!(
                "driver sends v{found}, this tool reads v{}",
                weir_abi::policy::POLICY_ABI_VERSION
            ),
            upgrade: if found < weir_abi::policy::POLICY_ABI_VERSION {
                Upgrade::Driver
            } else {
                Upgrade::Tool
            },
        }),
        Err(e) => Err(ClientError::Malformed {
            request: NAME,
            detail: e.to_string(),
        }),
    }
}

/// Checks a read-events completion and returns its bytes (whole event records).
pub fn decode_events_bytes(c: &Completion) -> Result<&[u8], ClientError> {
    const NAME: &str = "read events";
    match c.status {
        STATUS_SUCCESS => Ok(&c.output),
        STATUS_INVALID_DEVICE_REQUEST => Err(unknown_request(NAME)),
        s => Err(ClientError::from_status(NAME, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_abi::stats::{write_reply, Written};

    fn stats_bytes(rules: usize, out_len: usize) -> (Vec<u8>, Written) {
        let mut out = vec![0u8; out_len];
        let header = StatsHeader {
            version: [0, 1, 0, 0],
            policy_generation: 3,
            event_drops: 9,
            ..StatsHeader::default()
        };
        let hits = (0..rules).map(|i| RuleHits {
            rule_id: 100 + i as u32,
            rule_index: i as u32,
            hits: 7 * i as u64,
        });
        let w = write_reply(&mut out, header, hits.collect::<Vec<_>>().into_iter());
        (out, w)
    }

    #[test]
    fn stats_reply_decodes_and_short_buffers_ask_for_the_size() {
        let req = stats_request(4);
        assert_eq!(req.code, 0x8057_6004);
        assert!(req.input.is_empty());
        let (out, w) = stats_bytes(3, req.output_len);
        let Written::Complete(n) = w else {
            panic!("{w:?}")
        };
        let r = decode_stats(&Completion {
            status: 0,
            output: out[..n].to_vec(),
        })
        .unwrap();
        let Reply::Done(s) = r else { panic!() };
        assert_eq!((s.header.policy_generation, s.header.event_drops), (3, 9));
        assert_eq!(
            s.rules.iter().map(|r| r.rule_id).collect::<Vec<_>>(),
            vec![100, 101, 102]
        );

        let (out, w) = stats_bytes(300, stats_request(0).output_len);
        let Written::HeaderOnly(n) = w else {
            panic!("{w:?}")
        };
        let r = decode_stats(&Completion {
            status: STATUS_BUFFER_OVERFLOW,
            output: out[..n].to_vec(),
        })
        .unwrap();
        assert_eq!(r, Reply::Retry(reply_size(300).unwrap() as usize));
    }

    #[test]
    fn old_drivers_and_wrong_versions_are_abi_mismatches() {
        let e = decode_stats(&Completion {
            status: STATUS_INVALID_BUFFER_SIZE,
            output: vec![],
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::AbiMismatch {
                    upgrade: Upgrade::Driver,
                    ..
                }
            ),
            "{e}"
        );
        let e = decode_set_policy(&Completion {
            status: STATUS_INVALID_DEVICE_REQUEST,
            output: vec![],
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::AbiMismatch {
                    upgrade: Upgrade::Driver,
                    ..
                }
            ),
            "{e}"
        );
        let (mut out, _) = stats_bytes(0, STATS_HEADER_SIZE);
        out[4] = 3;
        let e = decode_stats(&Completion {
            status: 0,
            output: out,
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::AbiMismatch {
                    upgrade: Upgrade::Tool,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn policy_requests_and_replies() {
        let req = set_policy_request(vec![1, 2, 3]).unwrap();
        assert_eq!(
            (req.code, req.output_len, req.name),
            (0x8057_A008, SET_POLICY_REPLY_SIZE, "set policy")
        );
        assert_eq!(set_policy_request(Vec::new()).unwrap().name, "clear policy");
        let e = set_policy_request(vec![0; MAX_BLOB_BYTES + 1]).unwrap_err();
        assert_eq!(
            e,
            ClientError::PolicyTooLarge {
                bytes: MAX_BLOB_BYTES + 1,
                limit: MAX_BLOB_BYTES
            }
        );

        let mut out = vec![0u8; SET_POLICY_REPLY_SIZE];
        SetPolicyReply::new(5, 2, 1).encode_into(&mut out).unwrap();
        assert_eq!(
            decode_set_policy(&Completion {
                status: 0,
                output: out
            })
            .unwrap()
            .generation,
            5
        );
        let e = decode_set_policy(&Completion {
            status: 0xE057_0002,
            output: vec![],
        })
        .unwrap_err();
        assert_eq!(
            e,
            ClientError::PolicyRefused {
                status: 0xE057_0002
            }
        );

        let blob = vec![9u8; 100];
        let req = get_policy_request(10);
        let mut out = vec![0u8; req.output_len];
        let w = weir_abi::policy::write_policy_reply(&mut out, 4, &blob);
        let weir_abi::policy::PolicyWritten::HeaderOnly(n) = w else {
            panic!("{w:?}")
        };
        let r = decode_get_policy(&Completion {
            status: STATUS_BUFFER_OVERFLOW,
            output: out[..n].to_vec(),
        })
        .unwrap();
        assert_eq!(r, Reply::Retry(POLICY_REPLY_HEADER_SIZE + 100));
        let mut out = vec![0u8; POLICY_REPLY_HEADER_SIZE + 100];
        weir_abi::policy::write_policy_reply(&mut out, 4, &blob);
        let r = decode_get_policy(&Completion {
            status: 0,
            output: out,
        })
        .unwrap();
        assert_eq!(
            r,
            Reply::Done(ActivePolicy {
                generation: 4,
                blob
            })
        );
    }
}
