//! The object cap on a list, in a test binary of its own: the plugin holds 5,000,000 objects on
//! the way (about 1.6 GiB in the debug build), which would load the machine under the time and
//! memory bounds that tests/hostile.rs measures in parallel.

mod support;

use support::hostile::{Hostile, Misbehaviour};
use support::one_line_error;

/// Pages that are full and never end hit the object cap (5,000,000) long before the page cap:
/// 100,000 ranges a page, stopped at page 51 of the 1,050 the page cap would allow.
#[test]
fn a_list_stops_at_five_million_objects() {
    let server = Hostile::start(Misbehaviour::FullPages(100_000), false);
    let (out, took, peak_kib) = server.run(&["status", "--chunk-size", "100000"]);
    one_line_error(
        &out,
        "more than 5000000 objects: not a list a real server sends",
    );
    eprintln!("stopped after {took:?}, peak {} MiB", peak_kib >> 10);
}
