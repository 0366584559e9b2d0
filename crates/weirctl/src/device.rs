//! Which transport weirctl's commands use: `\\.\Weir` on Windows; elsewhere none, or with
//! the `emulated` feature (tests) the emulation suite's harness at `WEIRCTL_EMULATOR`.

use weir_client::{Client, ClientError};

#[cfg(windows)]
pub type Device = weir_client::win32::Device;

#[cfg(all(not(windows), feature = "emulated"))]
pub type Device =
    weir_client::line::LineTransport<std::io::BufReader<std::net::TcpStream>, std::net::TcpStream>;

#[cfg(all(not(windows), not(feature = "emulated")))]
pub type Device = weir_client::Unavailable;

/// Opens the driver's control device.
#[cfg(any(windows, not(feature = "emulated")))]
pub fn open() -> Result<Client<Device>, ClientError> {
    weir_client::open()
}

/// Connects to the emulation suite's harness named by `WEIRCTL_EMULATOR` (`host:port`).
#[cfg(all(not(windows), feature = "emulated"))]
pub fn open() -> Result<Client<Device>, ClientError> {
    let addr = std::env::var("WEIRCTL_EMULATOR").map_err(|_| ClientError::Unsupported)?;
    weir_client::line::LineTransport::connect(&addr).map(Client::new)
}
