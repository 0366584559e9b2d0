//! Any bytes given to the READ_EVENTS reply decoder decode to records or one
//! error, never a panic; every record it accepts re-encodes to the same
//! bytes (for the kinds it knows), so the decoder reads nothing the format
//! does not define.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_events::record::{decode_one, encode_dropped, encode_event, Record};

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    while let Some(rest) = data.get(offset..).filter(|r| !r.is_empty()) {
        let Ok((record, size)) = decode_one(rest, offset) else { break };
        assert!(size >= 8 && size % 8 == 0 && size <= rest.len());
        let mut out = [0u8; 1024];
        match record {
            Record::Connection(e) => {
                let n = encode_event(&e, &mut out).unwrap();
                // Re-decoding the canonical encoding gives the same event.
                let (again, m) = decode_one(&out[..n], 0).unwrap();
                assert_eq!(m, n);
                assert_eq!(again, Record::Connection(e));
            }
            Record::Dropped { count } => {
                let n = encode_dropped(count, &mut out).unwrap();
                assert_eq!(decode_one(&out[..n], 0).unwrap().0, Record::Dropped { count });
            }
            Record::Unknown { .. } => {}
        }
        offset += size;
    }
    // The iterator agrees with the loop above and terminates.
    let _ = weir_events::decode(data).count();
});
