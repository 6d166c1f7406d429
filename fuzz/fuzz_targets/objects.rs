//! Objects as the server sends them (ServiceCIDRs, IPAddresses, Services, in lists): any JSON is
//! either refused or converted into the model, never a panic.
#![no_main]

use kubectl_servicecidr::cluster::wire::{List, WireIpAddress, WireService, WireServiceCidr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &[u8]| {
    if let Ok(list) = serde_json::from_slice::<List<WireServiceCidr>>(json) {
        for item in list.items {
            if let Ok(range) = item.into_model() {
                assert!(range.cidrs.iter().all(|c| c.trunc() == *c));
            }
        }
    }
    if let Ok(list) = serde_json::from_slice::<List<WireIpAddress>>(json) {
        for item in list.items {
            let _ = item.into_model();
        }
    }
    if let Ok(list) = serde_json::from_slice::<List<WireService>>(json) {
        for item in list.items {
            let _ = item.into_model();
        }
    }
});
