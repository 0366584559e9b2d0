//! `weirctl events`: reads event records from the driver.

use crate::output::{Failure, Output};

/// `weirctl events [--follow]`.
pub fn run(out: &Output, follow: bool) -> Result<(), Failure> {
    let client = weir_client::open()?;
    let bytes = client.read_event_bytes()?;
    let _ = (out, follow, bytes);
    Ok(())
}
