//! Reading the bytes of a policy or list file as Windows tools write them: UTF-8 with or
//! without a byte-order mark, UTF-16 LE or BE with one (Windows PowerShell 5.1's `>` and
//! `Out-File`), LF or CRLF line ends (the TOML parser and `str::lines` take both). Anything
//! else is refused with the position of the first bad byte and what to do.

use super::diagnostic::Diagnostic;

const SAVE_AS: &str = "save the file as UTF-8 (in Notepad: File > Save as > Encoding: UTF-8; \
    in PowerShell: Out-File -Encoding utf8)";

/// The text of `bytes`; `file` names it in the error.
///
/// # Errors
/// Not UTF-8 and no UTF-16 byte-order mark, or UTF-16 with an unpaired surrogate: a
/// diagnostic at the line and column of the first bad character.
pub fn decode(file: &str, bytes: &[u8]) -> Result<String, Diagnostic> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return utf8(file, rest);
    }
    let utf16 = |rest: &[u8], be: bool| -> Result<String, Diagnostic> {
        if !rest.len().is_multiple_of(2) {
            return Err(Diagnostic::file_error(
                file,
                format!("the file starts with a UTF-16 byte-order mark but has an odd number of bytes (cut short?); {SAVE_AS}"),
            ));
        }
        let units = rest.chunks_exact(2).map(|c| match c {
            [a, b] if be => u16::from_be_bytes([*a, *b]),
            [a, b] => u16::from_le_bytes([*a, *b]),
            _ => 0,
        });
        let mut out = String::with_capacity(rest.len() / 2);
        for c in char::decode_utf16(units) {
            match c {
                Ok(c) => out.push(c),
                Err(e) => {
                    let (line, column) = line_col(&out);
                    return Err(Diagnostic::error(
                        file,
                        line,
                        column,
                        format!(
                            "unpaired UTF-16 surrogate 0x{:04X}: the file is not valid UTF-16; {SAVE_AS}",
                            e.unpaired_surrogate()
                        ),
                    ));
                }
            }
        }
        Ok(out)
    };
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, false);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, true);
    }
    // UTF-16 without a byte-order mark: ASCII text has a zero byte in every other place.
    let sample = bytes.get(..bytes.len().min(64)).unwrap_or(bytes);
    if sample.len() >= 4 && sample.iter().filter(|b| **b == 0).count() * 3 >= sample.len() {
        return Err(Diagnostic::error(
            file,
            1,
            1,
            format!("the file looks like UTF-16 without a byte-order mark, which cannot be read reliably; {SAVE_AS}"),
        ));
    }
    utf8(file, bytes)
}

fn utf8(file: &str, bytes: &[u8]) -> Result<String, Diagnostic> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            let good = bytes.get(..e.valid_up_to()).unwrap_or(&[]);
            let prefix = std::str::from_utf8(good).unwrap_or("");
            let (line, column) = line_col(prefix);
            let bad = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
            Err(Diagnostic::error(
                file,
                line,
                column,
                format!(
                    "byte 0x{bad:02X} is not UTF-8 (the file is in another encoding, e.g. a Windows \
                     code page); {SAVE_AS}"
                ),
            ))
        }
    }
}

/// Line and column just past `prefix`.
fn line_col(prefix: &str) -> (usize, usize) {
    let line = prefix.matches('\n').count() + 1;
    let last = prefix.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[[rule]]\r\naction = \"block\" # é\r\n";

    fn utf16(s: &str, be: bool) -> Vec<u8> {
        let mut out = if be {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in s.encode_utf16() {
            out.extend(if be { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        out
    }

    #[test]
    fn every_encoding_windows_writes_decodes_to_the_same_text() {
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(TEXT.as_bytes());
        for bytes in [
            TEXT.as_bytes().to_vec(),
            bom,
            utf16(TEXT, false),
            utf16(TEXT, true),
        ] {
            assert_eq!(decode("p.toml", &bytes).unwrap(), TEXT);
        }
    }

    #[test]
    fn other_encodings_are_refused_with_a_position_and_the_fix() {
        // Latin-1 é on line 2.
        let e = decode("p.toml", b"[[rule]]\naction = \"block\" # \xE9\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 20));
        assert!(
            e.message.starts_with("byte 0xE9 is not UTF-8"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("save the file as UTF-8"),
            "{}",
            e.message
        );
        // UTF-16 LE without its mark.
        let mut raw = utf16(TEXT, false);
        raw.drain(..2);
        let e = decode("p.toml", &raw).unwrap_err();
        assert!(
            e.message.contains("UTF-16 without a byte-order mark"),
            "{}",
            e.message
        );
        let e = decode("p.toml", &[0xFF, 0xFE, 0x41]).unwrap_err();
        assert!(e.message.contains("odd number of bytes"), "{}", e.message);
        let e = decode(
            "p.toml",
            &[0xFF, 0xFE, 0x41, 0, 0x0A, 0, 0x00, 0xD8, 0x41, 0],
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
        assert!(
            e.message.contains("unpaired UTF-16 surrogate 0xD800"),
            "{}",
            e.message
        );
    }
}
