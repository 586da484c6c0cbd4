//! The AF_XDP frame parser on arbitrary frames (what any host on the link can
//! send to the interface), and the reply written for each frame it accepts:
//! no input may panic either, and a reply must read back as the datagram's
//! way back with the same payload (so its lengths and IPv4 header checksum
//! are right).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::xdp::frame;

fuzz_target!(|data: &[u8]| {
    let Ok((d, payload)) = frame::parse(data, &[6969, 6881]) else {
        return;
    };
    assert!(d.dst().port() == 6969 || d.dst().port() == 6881);
    let r = d.reply();
    let mut out = [0u8; 2048];
    let at = r.header_len();
    let Some(room) = out.get_mut(at..at + payload.len()) else {
        return;
    };
    room.copy_from_slice(payload);
    let n = r.write(&mut out, payload.len()).expect("a received payload fits a reply");
    // The way back is a frame too, unless the tracker's own end is one parse
    // refuses as a source (a group MAC, a multicast or broadcast address).
    if let Ok((back, again)) = frame::parse(&out[..n], &[d.src().port()]) {
        assert_eq!(back, r);
        assert_eq!(again, payload);
    }
});
