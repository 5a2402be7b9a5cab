//! The chunked decoder on arbitrary bytes: it never panics, and feeding the same bytes in
//! pieces (cut where the first byte says) gives the same body, the same end and the same
//! refusal as feeding them whole.
#![no_main]

use harrier_core::fuzzing::{decode_chunked, Chunked};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else { return };
    let whole = decode_chunked(input, &[]);
    let step = seed as usize % 7 + 1;
    let cuts: Vec<usize> = (step..input.len()).step_by(step).collect();
    assert_eq!(decode_chunked(input, &cuts), whole);
    if let Chunked::Complete { left, .. } = whole {
        assert!(left <= input.len());
    }
    if let Chunked::Refused(status) = whole {
        assert!(status == 400 || status == 431, "status {status}");
    }
});
