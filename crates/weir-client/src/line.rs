//! A [`Transport`] that carries requests as JSON lines to a test harness which
//! dispatches them to the emulated driver (feature `line-transport`, tests only; never
//! in the Windows build of weirctl).
//!
//! Request line: `{"op": "call", "name", "code", "input": hex, "output_len"}`.
//! Answer line: `{"status": u32, "output": hex}` (at most `output_len` bytes).
//! [`LineTransport::exchange`] sends any other object (the suite's own operations, e.g.
//! "classify this connection") and returns the answer.

use crate::client::Transport;
use crate::error::ClientError;
use crate::proto::{Completion, Request};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::sync::Mutex;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => {
                Some((char::from(*hi).to_digit(16)? * 16 + char::from(*lo).to_digit(16)?) as u8)
            }
            _ => None,
        })
        .collect()
}

/// JSON lines over a reader and a writer.
pub struct LineTransport<R, W> {
    io: Mutex<(R, W)>,
}

impl<R: BufRead, W: Write> LineTransport<R, W> {
    /// Answers are read from `reader`, requests written to `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            io: Mutex::new((reader, writer)),
        }
    }

    /// Sends `message` as one line and returns the answer line, parsed.
    pub fn exchange(&self, message: &Value) -> Result<Value, String> {
        let mut io = self
            .io
            .lock()
            .map_err(|_| "transport lock poisoned".to_string())?;
        let (reader, writer) = &mut *io;
        writeln!(writer, "{message}")
            .and_then(|()| writer.flush())
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        reader.read_line(&mut answer).map_err(|e| e.to_string())?;
        if answer.is_empty() {
            return Err("the harness closed the connection".into());
        }
        serde_json::from_str(&answer).map_err(|e| format!("answer {answer:?}: {e}"))
    }
}

impl LineTransport<BufReader<std::net::TcpStream>, std::net::TcpStream> {
    /// Connects to a harness listening on `addr` (`127.0.0.1:port`).
    pub fn connect(addr: &str) -> Result<Self, ClientError> {
        let stream = std::net::TcpStream::connect(addr).map_err(|e| ClientError::Malformed {
            request: "connect",
            detail: format!("{addr}: {e}"),
        })?;
        let reader = stream.try_clone().map_err(|e| ClientError::Malformed {
            request: "connect",
            detail: e.to_string(),
        })?;
        Ok(Self::new(BufReader::new(reader), stream))
    }
}

impl<R: BufRead, W: Write> Transport for LineTransport<R, W> {
    fn call(&self, r: &Request) -> Result<Completion, ClientError> {
        let fail = |detail: String| ClientError::Malformed {
            request: r.name,
            detail,
        };
        let request = json!({ "op": "call", "name": r.name, "code": r.code, "input": hex(&r.input), "output_len": r.output_len });
        let answer = self.exchange(&request).map_err(fail)?;
        let status = answer
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| fail(answer.to_string()))?;
        let output = unhex(answer.get("output").and_then(Value::as_str).unwrap_or(""))
            .ok_or_else(|| fail("output is not hex".into()))?;
        if output.len() > r.output_len {
            return Err(fail(format!(
                "{} output bytes for a {}-byte buffer",
                output.len(),
                r.output_len
            )));
        }
        Ok(Completion { status, output })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_out_as_lines_and_answers_come_back() {
        let answers = b"{\"status\": 2147483653, \"output\": \"0a0b\"}\n{\"status\": 0}\n".to_vec();
        let t = LineTransport::new(std::io::Cursor::new(answers), Vec::new());
        let c = t.call(&crate::proto::get_policy_request(8)).unwrap();
        assert_eq!(
            c,
            Completion {
                status: 0x8000_0005,
                output: vec![10, 11]
            }
        );
        let c = t
            .call(&crate::proto::set_policy_request(vec![1, 2]).unwrap())
            .unwrap();
        assert_eq!(c.output, Vec::<u8>::new());
        let (_, written) = t.io.into_inner().unwrap();
        let lines: Vec<Value> = String::from_utf8(written)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["code"], 0x8057_600C_u32);
        assert_eq!(lines[1]["input"], "0102");
        assert_eq!(lines[1]["name"], "set policy");
    }
}
