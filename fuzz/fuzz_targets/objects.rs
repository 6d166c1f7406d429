//! List pages as the server sends them (ServiceCIDRs, IPAddresses, Services), read as the plugin
//! reads them, part by part: any bytes are either refused or converted into the model, never a
//! panic.
#![no_main]

use kubectl_servicecidr::cluster::page::{PageReader, Part};
use kubectl_servicecidr::cluster::wire::{ListMeta, WireIpAddress, WireService, WireServiceCidr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &[u8]| {
    // Cut where the first byte says, as the network cuts a page into frames.
    let cut = json.first().map_or(0, |&b| usize::from(b)).min(json.len());
    let mut reader = PageReader::default();
    for chunk in [&json[..cut], &json[cut..]] {
        reader.feed(chunk);
        while let Ok(Some(part)) = reader.next_part() {
            match part {
                Part::Metadata(meta) => {
                    let _ = serde_json::from_slice::<ListMeta>(meta);
                }
                Part::Item(item) => {
                    if let Ok(w) = serde_json::from_slice::<WireServiceCidr>(item)
                        && let Ok(range) = w.into_model()
                    {
                        assert!(range.cidrs.iter().all(|c| c.trunc() == *c));
                    }
                    if let Ok(w) = serde_json::from_slice::<WireIpAddress>(item) {
                        let _ = w.into_model();
                    }
                    if let Ok(w) = serde_json::from_slice::<WireService>(item) {
                        let _ = w.into_model();
                    }
                }
            }
        }
    }
    let _ = reader.finish();
});
