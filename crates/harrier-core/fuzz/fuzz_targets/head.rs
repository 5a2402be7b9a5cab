//! The request-head parser on arbitrary bytes: it never panics, refuses only with the statuses
//! it may give, and a complete head is complete at the same length on its own while no strict
//! prefix of it is.
#![no_main]

use harrier_core::fuzzing::parse_head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_head(data) {
        Ok(Some(head)) => {
            assert!(head.len <= data.len());
            assert!(head.path_len <= head.target.len());
            assert_eq!(parse_head(&data[..head.len]), Ok(Some(head.clone())));
            assert!(!matches!(parse_head(&data[..head.len - 1]), Ok(Some(_))));
        }
        Ok(None) => {}
        Err(status) => assert!([400, 414, 431, 501, 505].contains(&status), "status {status}"),
    }
});
