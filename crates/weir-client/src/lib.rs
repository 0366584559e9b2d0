//! weir-client: the user-mode side of Weir's control device (`\\.\Weir`).
//!
//! - [`proto`]: the bytes of every request and the decoding of every reply (layouts from
//!   `weir-abi`, the policy blob from `weir-policy`), independent of transport.
//! - [`Client`]: the requests as methods over a [`Transport`]; on Windows
//!   [`open`] gives one over `\\.\Weir` (`win32::Device`).
//! - [`ClientError`]: failures worded with their fix (driver not installed or not started,
//!   not elevated, version mismatch, policy too large).
//! - [`stored`]: the stored policy file (its form, atomic writes) and the reload and
//!   policy-status requests.
//! - [`text`]: the TOML policy file (parse with positions, print back); [`paths`]: application
//!   paths to NT device paths.
//! - [`failsafe`]: the fail-closed allow-list value (`Parameters\FailClosedAllow`): parse,
//!   show, and the commands that write it.
//! - [`explain`]: which rule decides a connection and why each earlier one did not;
//!   [`diff`]: what changes from one policy to another.
//!
//! Only `win32` (Windows only) contains `unsafe`; everything else builds and is tested on
//! any OS.

pub mod client;
pub mod diff;
pub mod error;
pub mod explain;
pub mod failsafe;
#[cfg(feature = "line-transport")]
pub mod line;
pub mod paths;
pub mod proto;
pub mod stored;
pub mod text;
#[cfg(windows)]
pub mod win32;

pub use client::{Client, Transport};
pub use error::{ClientError, Upgrade};
pub use weir_abi;
pub use weir_events;
pub use weir_policy;

/// Opens `\\.\Weir`.
///
/// Errors: [`ClientError::NotInstalled`], [`ClientError::NotStarted`],
/// [`ClientError::NotLoaded`], [`ClientError::AccessDenied`]; [`ClientError::Unsupported`]
/// off Windows.
#[cfg(windows)]
pub fn open() -> Result<Client<win32::Device>, ClientError> {
    win32::Device::open().map(Client::new)
}

/// Opens `\\.\Weir`: always [`ClientError::Unsupported`] off Windows.
#[cfg(not(windows))]
pub fn open() -> Result<Client<Unavailable>, ClientError> {
    Err(ClientError::Unsupported)
}

/// The transport of non-Windows builds: no driver to talk to.
#[cfg(not(windows))]
#[derive(Debug)]
pub struct Unavailable;

#[cfg(not(windows))]
impl Transport for Unavailable {
    fn call(&self, _: &proto::Request) -> Result<proto::Completion, ClientError> {
        Err(ClientError::Unsupported)
    }
}
