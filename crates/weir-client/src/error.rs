//! What can go wrong talking to the driver, worded for the person at the prompt: each
//! error says what happened and the command that fixes it.

use std::fmt;
use weir_abi::status::{
    decode_code_of, describe, MAX_EVENT_READERS, STATUS_WEIR_POLICY_COMPILE, STATUS_WEIR_POLICY_TOO_LARGE,
    STATUS_WEIR_STATS_ABI_V1, STATUS_WEIR_TOO_MANY_READERS,
};
use weir_policy::limits::MAX_BLOB_BYTES;

/// `STATUS_ACCESS_DENIED`.
pub const STATUS_ACCESS_DENIED: u32 = 0xC000_0022;
/// `STATUS_CANCELLED`: the request was cancelled (CancelIoEx, handle closed).
pub const STATUS_CANCELLED: u32 = 0xC000_0120;
/// `STATUS_INVALID_BUFFER_SIZE`: what a stats-ABI-v1 driver answers a larger buffer with.
pub const STATUS_INVALID_BUFFER_SIZE: u32 = 0xC000_0206;
/// `STATUS_PENDING`.
pub const STATUS_PENDING: u32 = 0x0000_0103;

/// Which side of a version mismatch to upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// The driver is older than this tool.
    Driver,
    /// The tool is older than the driver.
    Tool,
}

/// An error of a driver request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// `\\.\Weir` does not exist and no `weir` service is installed.
    NotInstalled,
    /// The `weir` service is installed but not running (`state` as the service manager says).
    NotStarted {
        /// Service state, e.g. "stopped".
        state: String,
    },
    /// `\\.\Weir` does not exist; the service manager could not tell why.
    NotLoaded,
    /// Opening the device or the request needs an elevated (administrator) prompt.
    AccessDenied,
    /// The driver and the tool speak different versions of a reply.
    AbiMismatch {
        /// Which reply.
        what: &'static str,
        /// What was seen.
        detail: String,
        /// Who must move.
        upgrade: Upgrade,
    },
    /// The policy blob is over the size limit.
    PolicyTooLarge {
        /// Blob size in bytes (0 when only the driver knows).
        bytes: usize,
        /// The limit, `weir_policy::limits::MAX_BLOB_BYTES`.
        limit: usize,
    },
    /// The driver refused a policy blob (the previous policy stays active).
    PolicyRefused {
        /// The raw NTSTATUS.
        status: u32,
    },
    /// The request was cancelled (Ctrl-C).
    Cancelled,
    /// Every event-reader slot of the driver is held by other handles
    /// (`STATUS_WEIR_TOO_MANY_READERS`).
    TooManyReaders {
        /// The driver's bound, `weir_abi::status::MAX_EVENT_READERS`.
        limit: usize,
    },
    /// The driver completed `request` with an error status this crate has no words for.
    Status {
        /// The request's name.
        request: &'static str,
        /// The raw NTSTATUS.
        status: u32,
    },
    /// The driver's reply could not be decoded.
    Malformed {
        /// The request's name.
        request: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A Win32 call failed.
    Os {
        /// The function.
        call: &'static str,
        /// `GetLastError()`.
        code: u32,
    },
    /// Talking to the driver needs Windows.
    Unsupported,
}

impl ClientError {
    /// The error for a request completed with `status` (not success, not a buffer-overflow
    /// warning the caller handles).
    pub fn from_status(request: &'static str, status: u32) -> Self {
        match status {
            STATUS_ACCESS_DENIED => ClientError::AccessDenied,
            STATUS_CANCELLED => ClientError::Cancelled,
            STATUS_WEIR_TOO_MANY_READERS => ClientError::TooManyReaders { limit: MAX_EVENT_READERS },
            STATUS_WEIR_STATS_ABI_V1 => ClientError::AbiMismatch {
                what: "statistics",
                detail: "the driver refused a stats-ABI-v1 request".into(),
                upgrade: Upgrade::Tool,
            },
            STATUS_WEIR_POLICY_TOO_LARGE => ClientError::PolicyTooLarge {
                bytes: 0,
                limit: MAX_BLOB_BYTES,
            },
            s if s == STATUS_WEIR_POLICY_COMPILE
                || decode_code_of(s).is_some()
                || s == weir_abi::STATUS_WEIR_POLICY_INVALID =>
            {
                ClientError::PolicyRefused { status: s }
            }
            s => ClientError::Status { request, status: s },
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotInstalled => write!(
                f,
                "the Weir driver is not loaded: it is not installed (no `weir` service). Install it from the \
                 package in an elevated prompt with scripts\\Install-Weir.ps1 (or `pnputil /add-driver weir.inf \
                 /install` then `sc.exe start weir`)"
            ),
            ClientError::NotStarted { state } => write!(
                f,
                "the Weir driver is not loaded: the `weir` service is installed but {state}. Start it in an \
                 elevated prompt with `sc.exe start weir`"
            ),
            ClientError::NotLoaded => write!(
                f,
                "the Weir driver is not loaded (\\\\.\\Weir does not exist). Start it in an elevated prompt with \
                 `sc.exe start weir`, or install it first with scripts\\Install-Weir.ps1"
            ),
            ClientError::AccessDenied => write!(
                f,
                "access denied: Weir's control device accepts administrators only. Run weirctl from an elevated \
                 prompt (Run as administrator)"
            ),
            ClientError::AbiMismatch { what, detail, upgrade } => {
                let fix = match upgrade {
                    Upgrade::Driver => "the driver is older than this weirctl: install the driver package built with it",
                    Upgrade::Tool => "this weirctl is older than the driver: use the weirctl.exe shipped beside the driver package",
                };
                write!(f, "driver/tool version mismatch in the {what} reply ({detail}); {fix}")
            }
            ClientError::PolicyTooLarge { bytes, limit } => {
                if *bytes > 0 {
                    write!(f, "policy too large: {bytes} bytes encoded, the limit is {limit} bytes")
                } else {
                    write!(f, "policy too large: the driver's limit is {limit} bytes")
                }
            }
            ClientError::PolicyRefused { status } => {
                let what = describe(*status).unwrap_or("the policy was refused");
                match decode_code_of(*status) {
                    Some(code) => write!(
                        f,
                        "the driver refused the policy (status 0x{status:08X}, decode error {code}): {what}. The \
                         previous policy stays active. This weirctl and the driver disagree on the policy format; \
                         use the weirctl.exe shipped beside the driver package"
                    ),
                    None => write!(f, "the driver refused the policy (status 0x{status:08X}): {what}. The previous policy stays active"),
                }
            }
            ClientError::Cancelled => write!(f, "cancelled"),
            ClientError::TooManyReaders { limit } => write!(
                f,
                "{limit} handles are already reading Weir's events (the driver's limit): stop one of the other \
                 `weirctl events --follow` (or other readers) and run this again"
            ),
            ClientError::Status { request, status } => match describe(*status) {
                Some(d) => write!(f, "{request} failed: status 0x{status:08X} ({d})"),
                None => write!(f, "{request} failed: status 0x{status:08X}"),
            },
            ClientError::Malformed { request, detail } => write!(f, "{request}: unexpected reply from the driver: {detail}"),
            ClientError::Os { call, code } => write!(f, "{call} failed: Win32 error {code}"),
            ClientError::Unsupported => write!(
                f,
                "talking to the Weir driver needs Windows; on this system weirctl can only check policy files \
                 (`weirctl policy check FILE`)"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_users_can_act_on() {
        assert_eq!(
            ClientError::from_status("x", STATUS_ACCESS_DENIED),
            ClientError::AccessDenied
        );
        assert_eq!(
            ClientError::from_status("x", STATUS_CANCELLED),
            ClientError::Cancelled
        );
        assert_eq!(
            ClientError::from_status("read events", STATUS_WEIR_TOO_MANY_READERS),
            ClientError::TooManyReaders { limit: 16 }
        );
        assert!(ClientError::TooManyReaders { limit: 16 }.to_string().contains("stop one of the other"));
        assert_eq!(
            ClientError::from_status("x", STATUS_WEIR_POLICY_TOO_LARGE),
            ClientError::PolicyTooLarge {
                bytes: 0,
                limit: MAX_BLOB_BYTES
            }
        );
        assert_eq!(
            ClientError::from_status("x", 0xE057_0005),
            ClientError::PolicyRefused {
                status: 0xE057_0005
            }
        );
        let e = ClientError::from_status("x", STATUS_WEIR_STATS_ABI_V1);
        assert!(matches!(
            e,
            ClientError::AbiMismatch {
                upgrade: Upgrade::Tool,
                ..
            }
        ));
        assert_eq!(
            ClientError::from_status("get stats", 0xC000_0001),
            ClientError::Status {
                request: "get stats",
                status: 0xC000_0001
            }
        );
    }

    #[test]
    fn messages_name_the_fix() {
        assert!(ClientError::NotInstalled
            .to_string()
            .contains("Install-Weir.ps1"));
        assert!(ClientError::NotStarted {
            state: "stopped".into()
        }
        .to_string()
        .contains("sc.exe start weir"));
        assert!(ClientError::NotLoaded
            .to_string()
            .contains("sc.exe start weir"));
        assert!(ClientError::AccessDenied.to_string().contains("elevated"));
        let m = ClientError::PolicyTooLarge {
            bytes: 70_000_000,
            limit: MAX_BLOB_BYTES,
        }
        .to_string();
        assert!(
            m.contains(&MAX_BLOB_BYTES.to_string()) && m.contains("70000000"),
            "{m}"
        );
        let m = ClientError::AbiMismatch {
            what: "statistics",
            detail: "v1".into(),
            upgrade: Upgrade::Driver,
        }
        .to_string();
        assert!(m.contains("driver is older"), "{m}");
        let m = ClientError::PolicyRefused {
            status: 0xE057_0002,
        }
        .to_string();
        assert!(
            m.contains("0xE0570002") && m.contains("previous policy stays active"),
            "{m}"
        );
    }
}
