//! List pages as the server sends them (ServiceCIDRs, IPAddresses, Services), in JSON or protobuf,
//! read as the plugin reads them, part by part: any bytes are either refused or converted into the
//! model, never a panic. The first byte of an input picks the encoding (odd: protobuf) and where the
//! page is cut in two, so the seeds in fuzz/seeds/objects start with one: `@` (JSON, cut at 32) or
//! 0x81 (protobuf, cut at 64).
#![no_main]

use kubectl_servicecidr::cluster::page::{Part, Reader};
use kubectl_servicecidr::cluster::proto::{FromProtobuf, MEDIA_TYPE};
use kubectl_servicecidr::cluster::wire::{ListMeta, WireIpAddress, WireService, WireServiceCidr};
use libfuzzer_sys::fuzz_target;

fn decode<W: FromProtobuf + serde::de::DeserializeOwned>(protobuf: bool, bytes: &[u8]) -> Option<W> {
    if protobuf {
        W::from_protobuf(bytes).ok()
    } else {
        serde_json::from_slice(bytes).ok()
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the encoding and where the network cuts the page into frames.
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let protobuf = first & 1 == 1;
    let cut = usize::from(first >> 1).min(body.len());
    let mut reader =
        Reader::for_content_type(if protobuf { MEDIA_TYPE } else { "application/json" });
    for chunk in [&body[..cut], &body[cut..]] {
        reader.feed(chunk);
        while let Ok(Some(part)) = reader.next_part() {
            match part {
                Part::Metadata(meta) => {
                    let _ = decode::<ListMeta>(protobuf, meta);
                }
                Part::Item(item) => {
                    if let Some(w) = decode::<WireServiceCidr>(protobuf, item)
                        && let Ok(range) = w.into_model()
                    {
                        assert!(range.cidrs.iter().all(|c| c.trunc() == *c));
                    }
                    if let Some(w) = decode::<WireIpAddress>(protobuf, item) {
                        let _ = w.into_model();
                    }
                    if let Some(w) = decode::<WireService>(protobuf, item) {
                        let _ = w.into_model();
                    }
                }
            }
        }
    }
    let _ = reader.finish();
});
