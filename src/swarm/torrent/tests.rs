//! Tests of one torrent's forms: the inline forms and the box, moves
//! between them, and the growth the budget is told about.

use super::*;
use std::collections::HashMap;
use std::net::Ipv6Addr;

#[test]
fn inline_form_is_24_bytes() {
    assert_eq!(std::mem::size_of::<Torrent>(), 24);
}

fn a(n: u32) -> (Ipv4Addr, u16) {
    (Ipv4Addr::from(0x0a00_0000 + n), 6881)
}

/// Random upserts, removals and expiries of a few peers of both families
/// against a model: the torrent moves between forms and never loses count.
#[test]
fn matches_a_model_across_forms() {
    let h = ahash::RandomState::new();
    let mut t = Torrent::default();
    let mut model: HashMap<(bool, u32), (bool, Stamp)> = HashMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut forms = [0usize; 3];
    let mut stop_kept_box = false;
    for step in 0..20_000u16 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mostly IPv4 among five addresses in even phases, mostly IPv6
        // among two in odd ones (where one IPv6 peer alone is common).
        let odd = (step / 2000) % 2 == 1;
        let n = (x % if odd { 2 } else { 5 }) as u32;
        let v6 = (x >> 8).is_multiple_of(8) != odd;
        let seeder = (x >> 16) & 1 == 1;
        let now = step / 4;
        match (x >> 24) % 16 {
            0..=5 => {
                let u = if v6 {
                    let addr = (Ipv6Addr::from(u128::from(n)), 1);
                    let u = t.upsert::<Peer6>(addr, seeder, now, usize::MAX, &h);
                    assert_eq!(t.peers::<Peer6>().0[u.index].addr(), addr);
                    u
                } else {
                    let u = t.upsert::<Peer4>(a(n), seeder, now, usize::MAX, &h);
                    assert_eq!(t.peers::<Peer4>().0[u.index].addr(), a(n));
                    u
                };
                let was = model.insert((v6, n), (seeder, now)).map(|(s, _)| s);
                assert_eq!(u.was, was);
            }
            6..=14 => {
                let boxed = t.is_big();
                let got = if v6 {
                    t.remove::<Peer6>(&(Ipv6Addr::from(u128::from(n)), 1), &h)
                } else {
                    t.remove::<Peer4>(&a(n), &h)
                };
                assert_eq!(got, model.remove(&(v6, n)).map(|(s, _)| s));
                assert_eq!(t.is_big(), boxed, "a stop never changes the form");
                stop_kept_box |= boxed && got.is_some() && model.len() <= 1;
            }
            _ => {
                let ((s4, l4), (s6, l6)) = t.expire(now, Some(3), &h);
                let fresh: Vec<bool> = model
                    .iter()
                    .filter(|(_, (_, at))| now.wrapping_sub(*at) <= 3)
                    .map(|((v6, _), _)| *v6)
                    .collect();
                let v6 = fresh.iter().filter(|&&v6| v6).count();
                if (v6 == 0 && fresh.len() <= 2) || (v6 == 1 && fresh.len() == 1) {
                    assert!(!t.is_big(), "the sweep moves a small torrent inline");
                }
                let before = model.clone();
                model.retain(|_, (_, at)| now.wrapping_sub(*at) <= 3);
                let gone = |fam: bool, s: bool| {
                    before
                        .iter()
                        .filter(|((f, k), (sd, _))| {
                            *f == fam && *sd == s && !model.contains_key(&(*f, *k))
                        })
                        .count()
                };
                assert_eq!(
                    (s4, l4, s6, l6),
                    (
                        gone(false, true),
                        gone(false, false),
                        gone(true, true),
                        gone(true, false)
                    )
                );
            }
        }
        forms[t.form()] += 1;
        let c = t.counts();
        assert_eq!(
            c.seeders as usize,
            model.values().filter(|(s, _)| *s).count()
        );
        assert_eq!((c.seeders + c.leechers) as usize, model.len());
        assert_eq!(t.is_empty(), model.is_empty());
        let (p4, s4) = t.peers::<Peer4>();
        for (i, p) in p4.iter().enumerate() {
            let n = u32::from(p.addr().0) - 0x0a00_0000;
            assert_eq!(model[&(false, n)].0, i < s4, "seeders first");
        }
    }
    assert!(
        forms.iter().all(|&n| n > 500),
        "every form exercised: {forms:?}"
    );
    assert!(stop_kept_box, "a stop down to one peer kept the box");
}

#[test]
fn one_ipv6_peer_stays_inline_until_its_count_outgrows_16_bits() {
    let h = ahash::RandomState::new();
    let mut t = Torrent::default();
    let p = (Ipv6Addr::from(7u128), 51413);
    assert_eq!(t.upsert::<Peer6>(p, false, 1, usize::MAX, &h).was, None);
    assert_eq!((t.form(), t.heap_bytes()), (1, 0));
    assert_eq!(
        t.upsert::<Peer6>(p, true, 2, usize::MAX, &h).was,
        Some(false)
    );
    assert_eq!(t.peers::<Peer6>(), (&[Peer6::new(p, 2)][..], 1));
    t.set_completed(u32::from(u16::MAX) - 1);
    t.add_completed();
    assert_eq!((t.form(), t.counts().completed), (1, 65_535));
    assert_eq!(t.count_growth(65_535), 0);
    // One more download than 16 bits hold: boxed, nothing lost, and the
    // box costs what `count_growth` said.
    let growth = t.count_growth(t.completed_after_one());
    t.add_completed();
    assert_eq!(t.form(), 2);
    assert_eq!(t.heap_bytes(), growth);
    assert_eq!(
        t.counts(),
        Counts {
            seeders: 1,
            leechers: 0,
            completed: 65_536
        }
    );
    assert!(t.heap_bytes() > 0);
    // The sweep keeps it boxed (its count does not fit), and a stop
    // leaves the count.
    t.expire(3, Some(10), &h);
    assert_eq!(t.form(), 2);
    assert_eq!(t.remove::<Peer6>(&p, &h), Some(true));
    assert_eq!((t.counts().completed, t.is_empty()), (65_536, true));
    // A torrent whose count fits goes back inline, in the IPv6 form.
    let mut t = Torrent::default();
    t.upsert::<Peer6>(p, false, 1, usize::MAX, &h);
    t.upsert::<Peer4>(a(1), false, 1, usize::MAX, &h);
    assert_eq!(t.form(), 2);
    t.remove::<Peer4>(&a(1), &h);
    t.expire(2, Some(10), &h);
    assert_eq!((t.form(), t.len(), t.heap_bytes()), (1, 1, 0));
    // Expired, it is an empty IPv4 form that still holds its count.
    t.add_completed();
    t.expire(100, Some(10), &h);
    assert_eq!((t.form(), t.is_empty(), t.counts().completed), (0, true, 1));
}

/// Whatever the form and size (inline, boxed, indexed, near a cap), the
/// growth [`Torrent::insert_growth`] predicts for a new peer is what the
/// insert allocates: the budget grants exactly that before it.
#[test]
fn insert_growth_is_what_an_insert_allocates() {
    let h = ahash::RandomState::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut checked = [0usize; 3];
    for max in [usize::MAX, 40, 100] {
        let mut t = Torrent::default();
        let mut known: Vec<(bool, u32)> = Vec::new();
        let mut next = 0u32;
        for step in 0..4000u16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let now = step / 8;
            // Grow to a few hundred peers, shrink, and grow again.
            let grow = (step / 500) % 2 == 0;
            if !known.is_empty() && (x % 10) < if grow { 3 } else { 7 } {
                let (v6, n) = known.swap_remove((x >> 8) as usize % known.len());
                if v6 {
                    t.remove::<Peer6>(&(Ipv6Addr::from(u128::from(n)), 1), &h);
                } else {
                    t.remove::<Peer4>(&a(n), &h);
                }
                continue;
            }
            if (x >> 20).is_multiple_of(64) {
                // A sweep moves a small torrent back inline.
                t.expire(now, Some(1000), &h);
            }
            let v6 = (x >> 12).is_multiple_of(3);
            let seeder = (x >> 16) & 1 == 1;
            next += 1;
            let form = t.form();
            let before = t.heap_bytes();
            let predicted = if v6 {
                let g = t.insert_growth::<Peer6>(max);
                let addr = (Ipv6Addr::from(u128::from(next)), 1);
                t.insert_absent::<Peer6>(addr, seeder, now, max, &h);
                g
            } else {
                let g = t.insert_growth::<Peer4>(max);
                t.insert_absent::<Peer4>(a(next), seeder, now, max, &h);
                g
            };
            known.push((v6, next));
            assert_eq!(
                t.heap_bytes() - before,
                predicted,
                "form {form}, {} peers, max {max}",
                t.len()
            );
            checked[form] += usize::from(predicted > 0);
        }
    }
    assert!(
        checked.iter().all(|&n| n > 0),
        "growth seen in every form: {checked:?}"
    );
}
