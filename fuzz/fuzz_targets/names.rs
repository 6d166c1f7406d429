//! IPAddress names and CIDRs as the API gives them: never a panic, and whatever parses is
//! canonical (prints back as the very same text).
#![no_main]

use kubectl_servicecidr::model::{parse_cidr, parse_ip_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(ip) = parse_ip_name(text) {
        assert_eq!(ip.to_string(), text);
    }
    if let Ok(net) = parse_cidr(text) {
        assert_eq!(net.to_string(), text);
        assert_eq!(net.trunc(), net);
    }
});
