//! weir-client against the real weir.sys in the emulation suite.
//!
//! `tests/emulation/test_weir_client.py` starts the driver image under the emulator and
//! runs this program with pipes: every request [`Client`] makes goes out on stdout as one
//! JSON line (`{"op": "call", "code", "input" (hex), "output_len"}`), the suite dispatches it
//! to the image as an `IRP_MJ_DEVICE_CONTROL` and answers with the completion
//! (`{"status", "output" (hex)}`). So the bytes weir-client sends are the driver's input and
//! the driver's replies go through weir-client's own decoders, in one run: if either side
//! changes its format, a step below fails and the program exits with 1.
//!
//! `--events`: also checks the event stream (a blocked connection, read back as a record).
//!
//! Steps: stats (ABI v2), load `examples/server-ports.toml`, read it back byte-identical,
//! per-rule stats, a policy larger than the first get-policy buffer (the retry path), a
//! malformed blob refused with the decoder's status and the previous policy intact, clear.

#![allow(clippy::indexing_slicing)]

use serde_json::json;
use weir_client::line::LineTransport;
use weir_client::text::{self, AppPaths, LoadOptions};
use weir_client::weir_policy::{wire, AddrRange, AddressSet};
use weir_client::{Client, ClientError};

/// Requests as JSON lines on stdout, answers on stdin.
type Pipe = LineTransport<std::io::StdinLock<'static>, std::io::Stdout>;

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        eprintln!("ok: {what}");
        Ok(())
    } else {
        Err(format!("FAILED: {what}"))
    }
}

fn session(events: bool) -> Result<(), String> {
    let client = Client::new(LineTransport::new(
        std::io::stdin().lock(),
        std::io::stdout(),
    ));
    let e = |e: ClientError| e.to_string();

    let s = client.stats().map_err(e)?;
    check(
        s.header.abi_version == 2,
        "stats reply is ABI v2 and decodes",
    )?;
    let g0 = s.header.policy_generation;
    check(
        s.header.rule_count == 0 && s.rules.is_empty(),
        "a fresh driver has no rules",
    )?;

    let file = std::path::Path::new("examples/server-ports.toml");
    let loaded = text::load_file(
        file,
        &LoadOptions {
            app_paths: AppPaths::Keep,
        },
    )
    .map_err(|d| d.to_string())?;
    let reply = client.set_policy(&loaded.policy).map_err(e)?;
    check(
        reply.generation == g0 + 1,
        "set policy returns the next generation",
    )?;
    check(
        reply.rule_count == 4 && reply.set_count == 1,
        "set policy reply counts 4 rules and 1 set",
    )?;

    let active = client.get_policy_blob().map_err(e)?;
    let blob = wire::encode(&loaded.policy).map_err(|e| e.to_string())?;
    check(
        active.blob == blob,
        "get policy returns the blob byte-identical",
    )?;
    let (generation, policy) = client.get_policy().map_err(e)?;
    check(
        generation == g0 + 1 && policy.as_ref() == Some(&loaded.policy),
        "the active policy decodes to the file's",
    )?;

    let s = client.stats().map_err(e)?;
    let ids: Vec<u32> = s.rules.iter().map(|r| r.rule_id).collect();
    check(
        ids == [1, 2, 3, 9],
        "stats list the rules' hit counters in order",
    )?;
    check(
        s.header.policy_generation == g0 + 1,
        "stats report the generation",
    )?;

    // Larger than the first get-policy buffer: the client must retry with the size the
    // driver names.
    let mut big = loaded.policy.clone();
    big.sets.push(AddressSet {
        name: "big".into(),
        entries: (0..8_000u32)
            .map(|i| AddrRange::V4 {
                lo: 0x0B00_0000 + 4 * i,
                hi: 0x0B00_0001 + 4 * i,
            })
            .collect(),
    });
    let big_blob = wire::encode(&big).map_err(|e| e.to_string())?;
    check(
        big_blob.len() > weir_client::proto::POLICY_FIRST_BYTES,
        "the large blob exceeds the first get buffer",
    )?;
    let reply = client.set_policy(&big).map_err(e)?;
    check(reply.generation == g0 + 2, "the large policy is accepted")?;
    let active = client.get_policy_blob().map_err(e)?;
    check(
        active.blob == big_blob,
        "the large blob comes back byte-identical (after a retry)",
    )?;

    // A malformed blob: refused with the decoder's own code; nothing changes.
    let mut junk = big_blob.clone();
    if let Some(b) = junk.first_mut() {
        *b ^= 0xFF;
    }
    match client.set_policy_blob(junk) {
        Err(ClientError::PolicyRefused { status }) => check(
            weir_client::weir_abi::decode_code_of(status)
                == Some(wire::DecodeError::BadMagic.code()),
            "a blob with a bad magic is refused with 0xE057_0000 | BadMagic.code()",
        )?,
        other => return Err(format!("FAILED: malformed blob answered with {other:?}")),
    }
    let active = client.get_policy_blob().map_err(e)?;
    check(
        active.generation == g0 + 2 && active.blob == big_blob,
        "after the refusal the previous policy is intact",
    )?;

    if events {
        events_session(&client)?;
    }

    let reply = client.clear_policy().map_err(e)?;
    let (generation, policy) = client.get_policy().map_err(e)?;
    check(
        policy.is_none() && generation == reply.generation,
        "clear leaves no policy",
    )?;
    check(
        client.stats().map_err(e)?.header.rule_count == 0,
        "stats after clear list no rules",
    )?;
    Ok(())
}

/// A block rule, one connection it blocks (classified by the suite), and the event read
/// back through weir-client.
fn events_session(client: &Client<Pipe>) -> Result<(), String> {
    use weir_client::weir_events::{decode, Decision, Direction, Record};
    let e = |e: ClientError| e.to_string();
    let text = "[[rule]]\nid = 77\naction = \"block\"\nremote = \"203.0.113.5\"\n";
    let loaded = text::parse(
        "events.toml",
        text,
        None,
        &LoadOptions {
            app_paths: AppPaths::Keep,
        },
    )
    .map_err(|d| d.to_string())?;
    client.set_policy(&loaded.policy).map_err(e)?;
    let answer = client.transport().exchange(
        &json!({ "op": "connect", "layer": "connect-v4", "remote": "203.0.113.5", "remote_port": 443, "local": "10.0.0.2", "local_port": 50000 })
    )?;
    check(
        answer["action"] == "block",
        "the driver blocks the connection the rule names",
    )?;
    let bytes = client.read_event_bytes().map_err(e)?;
    let records: Vec<Record> = decode(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let event = records.iter().find_map(|r| match r {
        Record::Connection(ev) => Some(*ev),
        _ => None,
    });
    let Some(ev) = event else {
        return Err("FAILED: no connection record in the read".into());
    };
    check(
        ev.decision == Decision::Block && ev.rule_id == Some(77),
        "the event says blocked by rule 77",
    )?;
    check(
        ev.direction == Direction::Outbound && ev.remote_port == 443,
        "the event has the direction and port",
    )?;
    check(
        ev.remote_addr.get(..4) == Some(&[203, 0, 113, 5][..]),
        "the event has the remote address",
    )?;
    Ok(())
}

fn main() {
    let events = std::env::args().any(|a| a == "--events");
    let result = session(events);
    let done = match &result {
        Ok(()) => json!({ "op": "done", "ok": true }),
        Err(m) => json!({ "op": "done", "ok": false, "error": m }),
    };
    println!("{done}");
    if let Err(m) = result {
        eprintln!("{m}");
        std::process::exit(1);
    }
}
