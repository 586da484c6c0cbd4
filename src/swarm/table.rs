//! One shard's torrents: a dense, chunked array of entries plus a hash table of
//! `u32` positions into it (the layout of `indexmap`, with a chunked array).
//!
//! Why not a `HashMap<InfoHash, Torrent>`: its buckets hold the whole entry and
//! sit between 7/16 and 7/8 full as the table doubles, so a 48-byte entry costs
//! 56–112 bytes of resident memory. Here the table holds 5 bytes a slot (a
//! control byte and a position; 6–11 bytes a torrent) and the entries are
//! packed: every chunk but the last is full, and a chunk is allocated at its
//! final size, never reallocated, so the array has at most one partly filled
//! chunk and no doubling slack at all.
//!
//! A chunk is a fixed-size array behind one pointer, and the chunk list is
//! those pointers only: 8 bytes a chunk where a `Vec` header took 24, and no
//! bounds check inside a chunk. At 20 M peers (`benches/profile.sh`) every
//! step of a lookup is a cache miss of about the same cost (control bytes,
//! position, chunk pointer, entry); the smaller list still misses, and the
//! lookup's time per reply fell by about 5 % only.
//!
//! The misses of one lookup depend on each other, but those of different
//! requests do not: [`ProbeLayout`] tells where a lookup of a hash will read
//! first, so the net loop can prefetch the control bytes and positions of the
//! next few datagrams of a batch while it answers this one.
//!
//! Guarantees: positions are dense (`0..len`); removal moves the last entry into
//! the hole (so positions are not stable across removals, and nothing outside
//! this file keeps one); the table is keyed by the shard's keyed hash.

#[cfg(test)]
use super::{readmit, Admission};
use super::{InfoHash, Torrent};
use ahash::RandomState;
use hashbrown::HashTable;

/// Entries per chunk: 64 × 48 bytes = 3 KiB. Small, so that the one partly
/// filled chunk of each of 1024 shards is little (1.5 MiB in all on average),
/// and so that the allocator can place chunks in the holes the tables leave
/// when they double (with 12 KiB chunks, RSS ran 9 % above the bytes asked
/// for; with 3 KiB, 3 %); the chunk list of a shard of 10 k torrents is still
/// only 157 pointers.
const CHUNK_BITS: u32 = 6;
const CHUNK: usize = 1 << CHUNK_BITS;

/// `CHUNK` entries in one allocation.
type Chunk = Box<[Entry; CHUNK]>;

fn new_chunk() -> Chunk {
    Box::new(std::array::from_fn(|_| Entry::default()))
}

/// Bytes of one table slot (a position).
const SLOT: usize = std::mem::size_of::<u32>();

/// Bytes `hashbrown` allocates for a table of `buckets` positions: the slots
/// rounded up to the control bytes' alignment (a group), a control byte a
/// bucket, and a trailing group of them. (The test
/// `the_table_grows_as_insert_growth_says` holds it to `allocation_size`.)
fn table_bytes(buckets: usize) -> usize {
    (buckets * SLOT).next_multiple_of(GROUP) + buckets + GROUP
}

/// Where a lookup in a table starts reading: the address of its control
/// bytes and its bucket mask. Only ever used to prefetch, never dereferenced,
/// so it may be read without the shard's lock: a stale or torn layout (the
/// table grew meanwhile) wastes a prefetch and does nothing else, as a
/// prefetch never faults.
///
/// It follows `hashbrown`'s layout, which its docs do not promise (the test
/// `the_probe_layout_is_where_hashbrown_looks` checks it): slots are stored
/// backwards from the control bytes, and a lookup of `hash` reads the 16
/// control bytes from `hash & mask` and the slots of the tags that match.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProbeLayout {
    /// 0: no table allocated.
    pub ctrl: usize,
    pub mask: usize,
}

/// Control bytes a lookup compares at once (SSE2's group).
const GROUP: usize = 16;

impl ProbeLayout {
    /// The layout of a table of `buckets` whose slot `index` is at `addr`.
    fn from_slot(addr: *const u32, index: usize, buckets: usize) -> ProbeLayout {
        ProbeLayout {
            ctrl: addr as usize + (index + 1) * SLOT,
            mask: buckets - 1,
        }
    }

    /// Prefetch what a lookup of `hash` reads first: its group of control
    /// bytes and the slots of that group (each may straddle two lines).
    #[inline]
    pub fn prefetch(self, hash: u64) {
        if self.ctrl == 0 {
            return;
        }
        let pos = hash as usize & self.mask;
        let ctrl = self.ctrl.wrapping_add(pos);
        prefetch(ctrl);
        prefetch(ctrl.wrapping_add(GROUP - 1));
        // Wrapping: a torn layout may pair any two words.
        let slots = self
            .ctrl
            .wrapping_sub(pos.wrapping_add(1).wrapping_mul(SLOT));
        prefetch(slots);
        prefetch(slots.wrapping_sub((GROUP - 1) * SLOT));
    }
}

/// Ask for the cache line holding `addr`. Any address will do.
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program can see and
    // never faults, whatever the address; the pointer is never dereferenced.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(addr));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// A torrent and its key, as stored.
#[derive(Debug, Default)]
pub struct Entry {
    pub key: InfoHash,
    /// The stamp of the access policy that last admitted this torrent
    /// ([`super::Admission`]); 0: none yet. It fills the padding between the
    /// key and the torrent, so it costs no memory (see the size test).
    pub admitted: u32,
    pub torrent: Torrent,
}

/// The torrents of one shard. See the module docs.
#[derive(Debug)]
pub struct Torrents {
    /// Positions into `chunks`, hashed by the key of the entry they point at.
    table: HashTable<u32>,
    /// `CHUNK` entries each; positions `0..len` are in use, every slot past
    /// `len` holds `Entry::default()` (no heap). All chunks are full but the
    /// last, which may also be empty (kept as a spare until the one before it
    /// is no longer full, so adding and removing at a chunk boundary does not
    /// allocate each time).
    chunks: Vec<Chunk>,
    len: usize,
    hasher: RandomState,
    /// Where `table` is, kept as it grows or shrinks.
    layout: ProbeLayout,
}

/// The entry at position `i` of `chunks` (the inner index is masked, so only
/// the chunk list is bounds-checked).
#[inline]
fn chunk_at(chunks: &[Chunk], i: usize) -> &Entry {
    &chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
}

impl Torrents {
    pub fn with_hasher(hasher: RandomState) -> Torrents {
        Torrents {
            table: HashTable::new(),
            chunks: Vec::new(),
            len: 0,
            hasher,
            layout: ProbeLayout::default(),
        }
    }

    /// Where a lookup starts reading ([`ProbeLayout`]); it changes only when
    /// a torrent is added or the table shrinks.
    pub fn layout(&self) -> ProbeLayout {
        self.layout
    }

    /// Find where the table is again, from any slot (after a shrink).
    fn relocate(&mut self) {
        self.layout = ProbeLayout::default();
        if self.len == 0 {
            return;
        }
        let hash = self.hash(&self.at(0).key);
        if let Some(b) = self.table.find_bucket_index(hash, |&j| j == 0) {
            if let Some(slot) = self.table.get_bucket(b) {
                self.layout = ProbeLayout::from_slot(slot, b, self.table.num_buckets());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, key: &InfoHash) -> u64 {
        self.hasher.hash_one(key)
    }

    fn at(&self, i: usize) -> &Entry {
        chunk_at(&self.chunks, i)
    }

    fn at_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    fn position(&self, key: &InfoHash) -> Option<usize> {
        self.position_hashed(self.hash(key), key)
    }

    fn position_hashed(&self, hash: u64, key: &InfoHash) -> Option<usize> {
        let chunks = &self.chunks;
        self.table
            .find(hash, |&i| chunk_at(chunks, i as usize).key == *key)
            .map(|&i| i as usize)
    }

    pub fn get(&self, key: &InfoHash) -> Option<&Torrent> {
        self.position(key).map(|i| &self.at(i).torrent)
    }

    /// The entry of `key`: its admission stamp and its torrent.
    pub fn entry_mut(&mut self, key: &InfoHash) -> Option<(&mut u32, &mut Torrent)> {
        self.position(key).map(|i| {
            let e = self.at_mut(i);
            (&mut e.admitted, &mut e.torrent)
        })
    }

    /// Where `key` is (`Ok`: its position), or its hash to insert it with
    /// (`Err`), in one lookup.
    #[inline]
    pub fn lookup(&self, key: &InfoHash) -> Result<usize, u64> {
        let hash = self.hash(key);
        self.position_hashed(hash, key).ok_or(hash)
    }

    /// The torrent at position `i` (`0..len`).
    #[inline]
    pub fn torrent_at(&self, i: usize) -> &Torrent {
        &self.at(i).torrent
    }

    /// The entry at position `i` (`0..len`): its admission stamp and torrent.
    #[inline]
    pub fn entry_at(&mut self, i: usize) -> (&mut u32, &mut Torrent) {
        let e = self.at_mut(i);
        (&mut e.admitted, &mut e.torrent)
    }

    /// Heap bytes the next [`Torrents::insert_new`] may allocate: a new
    /// chunk (and room for its pointer) when every chunk is full, and the
    /// table's next size when it has no room left. An upper bound: a table
    /// whose insert lands on a tombstone does not grow.
    pub fn insert_growth(&self) -> usize {
        let mut growth = 0;
        if self.len == self.chunks.len() * CHUNK {
            growth += std::mem::size_of::<[Entry; CHUNK]>();
            let cap = self.chunks.capacity();
            if self.chunks.len() == cap {
                growth += ((2 * cap).max(4) - cap) * std::mem::size_of::<Chunk>();
            }
        }
        if self.table.len() == self.table.capacity() {
            // An unallocated table reads as one bucket; its first has four.
            let grown = match self.table.allocation_size() {
                0 => 4,
                _ => 2 * self.table.num_buckets(),
            };
            growth += table_bytes(grown) - self.table.allocation_size();
        }
        growth
    }

    /// The torrent of `key` if `adm` admits it (see [`super::Admission`]),
    /// added empty (under `adm`'s stamp) if it is not there; in one lookup.
    /// `None`, and nothing added, for one `adm` does not admit.
    #[cfg(test)]
    pub fn get_or_insert_admitted<A: Admission>(
        &mut self,
        key: &InfoHash,
        adm: &A,
    ) -> Option<&mut Torrent> {
        let hash = self.hash(key);
        let i = match self.position_hashed(hash, key) {
            Some(i) => {
                if !readmit(adm, key, &mut self.at_mut(i).admitted) {
                    return None;
                }
                i
            }
            None if A::CHECKS && !adm.admits(key) => return None,
            None => self.insert_new(hash, key, adm.stamp()),
        };
        Some(&mut self.at_mut(i).torrent)
    }

    /// Add `key` (not stored, hashing to `hash`) with an empty torrent
    /// admitted under `admitted`; its position.
    pub fn insert_new(&mut self, hash: u64, key: &InfoHash, admitted: u32) -> usize {
        let i = self.len;
        let Torrents {
            table,
            chunks,
            hasher,
            ..
        } = self;
        let slot = table.insert_unique(hash, i as u32, |&j| {
            hasher.hash_one(chunk_at(chunks, j as usize).key)
        });
        let (addr, b) = (slot.get() as *const u32, slot.bucket_index());
        self.layout = ProbeLayout::from_slot(addr, b, table.num_buckets());
        if i >> CHUNK_BITS == chunks.len() {
            chunks.push(new_chunk());
        }
        chunks[i >> CHUNK_BITS][i & (CHUNK - 1)] = Entry {
            key: *key,
            admitted,
            torrent: Torrent::default(),
        };
        self.len += 1;
        i
    }

    /// Remove the torrent of `key`, if there.
    pub fn remove(&mut self, key: &InfoHash) -> Option<Torrent> {
        let i = self.position(key)?;
        Some(self.swap_remove(i))
    }

    /// The entry at position `i` (`0..len`): positions are dense, so a random
    /// position picks a uniformly random torrent (victim sampling).
    pub fn at_position(&mut self, i: usize) -> (&InfoHash, &mut Torrent) {
        // Past `len` a chunk holds empty defaults, not a torrent.
        debug_assert!(i < self.len);
        let e = self.at_mut(i);
        (&e.key, &mut e.torrent)
    }

    /// Remove the torrent at position `i` (`0..len`); the last entry moves into it.
    pub fn remove_at(&mut self, i: usize) -> Torrent {
        self.swap_remove(i)
    }

    /// Remove position `i`: the last entry moves into it.
    fn swap_remove(&mut self, i: usize) -> Torrent {
        debug_assert!(i < self.len);
        let hash = self.hash(&self.at(i).key);
        if let Ok(slot) = self.table.find_entry(hash, |&j| j as usize == i) {
            slot.remove();
        }
        let last = self.len - 1;
        if i != last {
            let moved = self.hash(&self.at(last).key);
            if let Some(slot) = self.table.find_mut(moved, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        // The last slot goes back to the empty default.
        let mut gone = std::mem::take(self.at_mut(last));
        if i != last {
            std::mem::swap(self.at_mut(i), &mut gone);
        }
        self.len -= 1;
        if self.len == 0 {
            // The last torrent gone: nothing kept. At a memory bound, a
            // shard with no torrent to evict holds no bytes another shard's
            // newcomer could need.
            self.release();
            return gone.torrent;
        }
        // Free a spare empty chunk once the chunk before it has room again.
        let used = self.len.div_ceil(CHUNK);
        if self.chunks.len() > used + 1
            || (self.chunks.len() > used && !self.len.is_multiple_of(CHUNK))
        {
            self.chunks.truncate(used);
        }
        gone.torrent
    }

    /// Free the table and the chunks of an empty shard.
    fn release(&mut self) {
        debug_assert_eq!(self.len, 0);
        self.table = HashTable::new();
        self.chunks = Vec::new();
        self.layout = ProbeLayout::default();
    }

    /// Keep the torrents for which `keep` returns true (it may change them
    /// and their admission stamps). Visits from the end, so each removal
    /// moves an already visited entry.
    pub fn retain(&mut self, mut keep: impl FnMut(&InfoHash, &mut u32, &mut Torrent) -> bool) {
        for i in (0..self.len).rev() {
            let e = self.at_mut(i);
            if !keep(&e.key, &mut e.admitted, &mut e.torrent) {
                self.swap_remove(i);
            }
        }
        // No spare chunk after a sweep.
        self.chunks.truncate(self.len.div_ceil(CHUNK));
        // The table shrinks once three quarters of it are empty (hysteresis:
        // a shard that refills soon does not pay for regrowing it).
        if self.table.capacity() > 64 && self.len < self.table.capacity() / 4 {
            let Torrents {
                table,
                chunks,
                hasher,
                ..
            } = self;
            table.shrink_to(self.len * 2, |&j| {
                hasher.hash_one(chunk_at(chunks, j as usize).key)
            });
            self.relocate();
        }
        self.chunks.shrink_to(self.chunks.len() * 2);
    }

    /// Every entry in use, in no particular order.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.len)
    }

    /// Every torrent and its key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&InfoHash, &Torrent)> {
        self.entries().map(|e| (&e.key, &e.torrent))
    }

    /// Every torrent, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Torrent> {
        self.entries().map(|e| &e.torrent)
    }

    /// Heap bytes of the table and the entry array (not what the torrents own).
    pub fn own_bytes(&self) -> usize {
        self.table.allocation_size()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self.chunks.len() * CHUNK * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key(n: u32) -> InfoHash {
        let mut k = [0u8; 20];
        k[..4].copy_from_slice(&n.to_le_bytes());
        k[19] = 7;
        k
    }

    fn check(t: &Torrents, model: &HashMap<InfoHash, u32>) {
        assert_eq!(t.len(), model.len());
        assert_eq!(t.table.len(), model.len());
        for (k, &v) in model {
            assert_eq!(t.get(k).map(|t| t.counts().completed), Some(v), "{k:?}");
        }
        assert_eq!(t.iter().count(), t.len());
        // Past `len`, only empty defaults (nothing owned, nothing to find).
        for i in t.len..t.chunks.len() * CHUNK {
            let e = chunk_at(&t.chunks, i);
            assert_eq!((e.key, e.admitted, e.torrent.len()), ([0; 20], 0, 0));
        }
        assert!(
            t.chunks.len() <= t.len.div_ceil(CHUNK) + 1,
            "one spare at most"
        );
    }

    /// The layout a prefetch uses is where `hashbrown` keeps each slot and its
    /// control byte (a `hashbrown` upgrade that moves them fails here; the
    /// prefetch would only go stale, but its gain with it).
    #[allow(unsafe_code)]
    fn check_layout(t: &Torrents) {
        let l = t.layout();
        if l.ctrl == 0 {
            assert_eq!(t.len, 0);
            return;
        }
        assert_eq!(l.mask + 1, t.table.num_buckets());
        for j in 0..t.len {
            let hash = t.hash(&t.at(j).key);
            let b = t.table.find_bucket_index(hash, |&x| x as usize == j);
            let b = b.expect("every position is in the table");
            let slot = t.table.get_bucket(b).expect("a full bucket") as *const u32;
            assert_eq!(slot as usize, l.ctrl - (b + 1) * SLOT, "slot {b}");
            // SAFETY: `l.ctrl` was just shown to be the end of the slots, where
            // the table's `num_buckets` control bytes start, and `b` is below it.
            let tag = unsafe { *(l.ctrl as *const u8).add(b) };
            assert_eq!(tag, (hash >> 57) as u8, "control byte {b}");
        }
    }

    #[test]
    fn the_probe_layout_is_where_hashbrown_looks() {
        let mut t = Torrents::with_hasher(RandomState::new());
        assert_eq!(t.layout(), ProbeLayout::default());
        for n in 0..5000 {
            t.get_or_insert_admitted(&key(n), &crate::swarm::Open);
            if n.is_power_of_two() || n % 997 == 0 {
                check_layout(&t);
            }
        }
        let grown = t.layout();
        // A sweep that leaves a tenth shrinks the table: the layout follows.
        t.retain(|k, _, _| k[0] % 10 == 0);
        assert_ne!(t.layout(), grown);
        check_layout(&t);
        // Prefetching is harmless whatever the layout says.
        for l in [t.layout(), grown, ProbeLayout { ctrl: 1, mask: !0 }] {
            l.prefetch(0x0123_4567_89ab_cdef);
            l.prefetch(u64::MAX);
        }
        t.retain(|_, _, _| false);
        assert_eq!(t.layout(), ProbeLayout::default());
    }

    #[test]
    fn the_admission_stamp_costs_no_memory() {
        // Key (20) + stamp (4) + torrent (24, 8-aligned): the stamp sits in
        // what was padding, so the long tail's bytes per torrent are unchanged.
        assert_eq!(std::mem::size_of::<Torrent>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 48);
    }

    #[test]
    fn matches_a_model_across_chunk_boundaries() {
        let mut t = Torrents::with_hasher(RandomState::new());
        let mut model = HashMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..30_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Grow past several chunks, shrink, grow again.
            let grow = (step / 6000) % 2 == 0;
            let n = (x % 2000) as u32;
            if (x >> 40) % 10 < if grow { 7 } else { 3 } {
                t.get_or_insert_admitted(&key(n), &crate::swarm::Open)
                    .unwrap()
                    .set_completed(step);
                model.insert(key(n), step);
            } else {
                assert_eq!(
                    t.remove(&key(n)).map(|t| t.counts().completed),
                    model.remove(&key(n))
                );
            }
            if step % 499 == 0 {
                check(&t, &model);
                check_layout(&t);
            }
        }
        t.retain(|k, _, v| {
            let c = v.counts().completed;
            let keep = c % 3 != 0;
            assert_eq!(model.get(k), Some(&c));
            keep
        });
        model.retain(|_, v| *v % 3 != 0);
        check(&t, &model);
        t.retain(|_, _, _| false);
        model.clear();
        check(&t, &model);
        assert!(t.chunks.is_empty());
    }

    #[test]
    fn the_table_grows_as_insert_growth_says() {
        let mut t = Torrents::with_hasher(RandomState::new());
        let mut grew = 0;
        for n in 0..20_000 {
            let predicted = t.insert_growth();
            let before = t.own_bytes();
            let hash = t.hash(&key(n));
            t.insert_new(hash, &key(n), 0);
            let actual = t.own_bytes() - before;
            // Without removals there are no tombstones: the bound is exact.
            assert_eq!(actual, predicted, "insert {n}");
            grew += usize::from(actual > 0);
            if t.table.num_buckets() > 0 {
                assert_eq!(
                    t.table.allocation_size(),
                    table_bytes(t.table.num_buckets())
                );
            }
        }
        assert!(grew > 300, "{grew} growths");
        // After removals, the bound still holds (a tombstone may spare the growth).
        for n in (0..20_000).step_by(3) {
            t.remove(&key(n));
        }
        for n in 20_000..40_000 {
            let predicted = t.insert_growth();
            let before = t.own_bytes();
            let hash = t.hash(&key(n));
            t.insert_new(hash, &key(n), 0);
            assert!(t.own_bytes() - before <= predicted, "insert {n}");
        }
    }
}
