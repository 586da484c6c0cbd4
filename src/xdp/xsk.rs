//! One AF_XDP socket: a UMEM of frames shared with the kernel, its fill and
//! completion rings, and the socket's RX and TX rings, bound to one queue of
//! one interface in copy mode (which every driver with native XDP has).
//!
//! [`Xsk::serve`] moves one batch: frames from the RX ring are parsed
//! ([`frame::parse`]), each accepted datagram's payload is handed to the
//! caller's handler together with the payload area of a free TX frame, and
//! the reply's headers are written around what the handler wrote
//! ([`frame::Datagram::write`]), so a reply is never copied. RX frames go
//! straight back to the fill ring; TX frames come back through the
//! completion ring. Nothing allocates after [`Xsk::bind`].
//!
//! The rings are the kernel's single-producer/single-consumer rings
//! (Documentation/networking/af_xdp.rst): the producer writes descriptors,
//! then publishes its index with a release store; the consumer reads the
//! index with an acquire load, then the descriptors, then publishes its own
//! index with a release store. libxdp's ring functions do the same but are
//! header-only inlines, which Rust cannot call.
//!
//! # Safety
//!
//! - The UMEM and the four rings are `mmap`ed once in [`Xsk::bind`] with the
//!   lengths the kernel asked for (`XDP_MMAP_OFFSETS`, ring sizes), checked
//!   for failure, and unmapped once in `Drop`; nothing else maps or frees
//!   them, and [`Xsk`] is not `Clone`, so every pointer into them is valid
//!   while `self` lives.
//! - Ring indices are masked by `size - 1` (sizes are powers of two) before
//!   indexing the descriptor arrays, so every descriptor access is in bounds.
//! - The producer/consumer words are `u32`s at the kernel's offsets, 4-byte
//!   aligned, accessed only through `AtomicU32` (the kernel updates them
//!   concurrently).
//! - A frame address handed to the kernel is always one of ours (a multiple
//!   of `FRAME` below `UMEM_LEN`); an RX descriptor's address and length are
//!   bounds-checked against the UMEM before its bytes are read, so a frame
//!   slice never leaves the mapping. Each frame is owned by exactly one
//!   party at a time (fill ring, RX ring, free list, TX ring, completion
//!   ring), so no slice of it aliases a kernel write in progress.
#![allow(unsafe_code)]

use super::frame;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Bytes per UMEM frame: one Ethernet frame of a 1500-byte MTU and then some.
pub const FRAME: usize = 2048;
/// Frames in the UMEM: half on the fill ring for RX, half for TX.
const FRAMES: usize = 4096;
const UMEM_LEN: usize = FRAME * FRAMES;
/// Entries per ring (a power of two).
const RING: u32 = 2048;
/// Frames handled per [`Xsk::serve`].
pub const BATCH: usize = 64;

/// A ring shared with the kernel; `T` is `u64` (fill, completion) or
/// `xdp_desc` (RX, TX).
#[derive(Debug)]
struct Ring<T> {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `offsets` at page offset `pgoff`.
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64) -> io::Result<Ring<T>> {
        let map_len = off.desc as usize + RING as usize * size_of::<T>();
        // SAFETY: a fresh shared mapping of the socket's ring; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = p.cast::<u8>();
        // SAFETY: the kernel's offsets lie inside the mapping it sized.
        let at = |o: u64| unsafe { NonNull::new_unchecked(base.add(o as usize)) };
        Ok(Ring {
            map: at(0),
            map_len,
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            desc: at(off.desc).cast(),
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: see the module's safety section.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: see the module's safety section.
        unsafe { self.consumer.as_ref() }
    }

    fn get(&self, i: u32) -> T {
        // SAFETY: masked index into the ring's descriptor array.
        unsafe { self.desc.as_ptr().add((i & (RING - 1)) as usize).read() }
    }

    fn set(&mut self, i: u32, v: T) {
        // SAFETY: masked index into the ring's descriptor array.
        unsafe { self.desc.as_ptr().add((i & (RING - 1)) as usize).write(v) }
    }

    /// As the consumer: entries the kernel has produced and we have not read.
    fn ready(&self) -> (u32, u32) {
        let cons = self.consumer().load(Ordering::Relaxed);
        let prod = self.producer().load(Ordering::Acquire);
        (cons, prod.wrapping_sub(cons))
    }

    /// As the producer: our index and how many entries are free.
    fn room(&self) -> (u32, u32) {
        let prod = self.producer().load(Ordering::Relaxed);
        let cons = self.consumer().load(Ordering::Acquire);
        (prod, RING - prod.wrapping_sub(cons))
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: see the module's safety section.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

/// What one [`Xsk::serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Frames taken from the RX ring.
    pub received: usize,
    /// Frames that were not a datagram for the tracker ([`frame::Skip`]).
    pub skipped: usize,
    /// Replies put on the TX ring.
    pub replied: usize,
    /// Replies the handler wrote that found no free TX frame or ring slot.
    pub dropped: usize,
}

/// An AF_XDP socket on one queue, with its own UMEM.
#[derive(Debug)]
pub struct Xsk {
    fd: OwnedFd,
    umem: NonNull<u8>,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    /// TX frames we own, by UMEM address.
    free: Vec<u64>,
    /// Longest frame to send: the interface's MTU plus the Ethernet header
    /// (AF_XDP cannot fragment; the kernel refuses longer frames).
    max_frame: usize,
}

// SAFETY: the mappings are owned by the Xsk alone; moving it to another
// thread moves that ownership (it is not Sync: one thread serves a socket).
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a live value of the option's type and size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (v as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Xsk {
    /// An AF_XDP socket bound to queue `queue` of interface `ifindex`, in
    /// copy mode, its fill ring full. Put it in the program's XSKMAP to
    /// receive.
    pub fn bind(ifindex: u32, queue: u32) -> io::Result<Xsk> {
        // SAFETY: plain socket(2); the result is checked and owned below.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a fresh private anonymous mapping; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                UMEM_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let umem = NonNull::new(p.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        // From here a failure must unmap the UMEM: build the rest in a
        // closure and unmap on error.
        let rest = move || -> io::Result<Xsk> {
            let reg = libc::xdp_umem_reg {
                addr: umem.as_ptr() as u64,
                len: UMEM_LEN as u64,
                chunk_size: FRAME as u32,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            setsockopt(raw, libc::XDP_UMEM_REG, &reg)?;
            for opt in [
                libc::XDP_UMEM_FILL_RING,
                libc::XDP_UMEM_COMPLETION_RING,
                libc::XDP_RX_RING,
                libc::XDP_TX_RING,
            ] {
                setsockopt(raw, opt, &RING)?;
            }
            // SAFETY: an all-zero xdp_mmap_offsets is a valid value.
            let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
            // SAFETY: `off` and `len` are live and sized for the option.
            let r = unsafe {
                libc::getsockopt(
                    raw,
                    libc::SOL_XDP,
                    libc::XDP_MMAP_OFFSETS,
                    (&raw mut off).cast(),
                    &mut len,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut xsk = Xsk {
                fill: Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING)?,
                comp: Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
                rx: Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64)?,
                tx: Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64)?,
                fd,
                umem,
                free: Vec::with_capacity(FRAMES / 2),
                max_frame: frame::field::eth::END + 1500,
            };
            // The first half of the frames receive; the second half send.
            let (prod, _) = xsk.fill.room();
            for i in 0..FRAMES / 2 {
                xsk.fill
                    .set(prod.wrapping_add(i as u32), (i * FRAME) as u64);
            }
            xsk.fill
                .producer()
                .store(prod.wrapping_add((FRAMES / 2) as u32), Ordering::Release);
            xsk.free
                .extend((FRAMES / 2..FRAMES).map(|i| (i * FRAME) as u64));
            let sa = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP,
                sxdp_ifindex: ifindex,
                sxdp_queue_id: queue,
                sxdp_shared_umem_fd: 0,
            };
            // SAFETY: `sa` is a live sockaddr_xdp of the size passed.
            let r = unsafe {
                libc::bind(
                    raw,
                    (&raw const sa).cast(),
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(xsk)
        };
        rest().inspect_err(|_| {
            // SAFETY: the UMEM mapped above; no Xsk took ownership of it.
            unsafe { libc::munmap(umem.as_ptr().cast(), UMEM_LEN) };
        })
    }

    /// Replies are sized for `mtu` (1500 until told otherwise).
    pub fn set_mtu(&mut self, mtu: usize) {
        self.max_frame = (frame::field::eth::END + mtu).min(FRAME);
    }

    fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        // SAFETY: `addr` is one of our frame addresses (see Safety), owned by
        // us while it is on the free list or being filled.
        unsafe {
            std::slice::from_raw_parts_mut(self.umem.as_ptr().add(addr as usize), self.max_frame)
        }
    }

    /// Waits up to `timeout` for frames to arrive.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one live pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        match r {
            r if r < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            0 => Ok(false),
            _ => Ok(true),
        }
    }

    /// Handles up to [`BATCH`] received frames: each datagram to one of
    /// `ports` goes to `handle(source, request, reply_payload)`, which
    /// returns the reply's length (0 for no reply).
    pub fn serve(
        &mut self,
        ports: &[u16],
        mut handle: impl FnMut(SocketAddr, &[u8], &mut [u8]) -> usize,
    ) -> io::Result<Served> {
        let mut done = Served::default();
        // TX frames the kernel has sent come back.
        let (cons, n) = self.comp.ready();
        for i in 0..n {
            let addr = self.comp.get(cons.wrapping_add(i));
            self.free.push(addr & !(FRAME as u64 - 1));
        }
        self.comp
            .consumer()
            .store(cons.wrapping_add(n), Ordering::Release);

        let (rx_cons, n) = self.rx.ready();
        let n = n.min(BATCH as u32);
        let (mut tx_prod, tx_room) = self.tx.room();
        let mut tx_room = tx_room;
        let (fill_prod, _) = self.fill.room();
        for i in 0..n {
            let d = self.rx.get(rx_cons.wrapping_add(i));
            done.received += 1;
            let start = d.addr as usize;
            let end = start.saturating_add(d.len as usize);
            if end <= UMEM_LEN && start / FRAME == (end.max(1) - 1) / FRAME {
                // SAFETY: checked inside the UMEM and inside one frame, which
                // the kernel handed us on the RX ring.
                let rx = unsafe {
                    std::slice::from_raw_parts(self.umem.as_ptr().add(start), end - start)
                };
                match frame::parse(rx, ports) {
                    Ok((datagram, request)) => {
                        let reply = datagram.reply();
                        let at = reply.header_len();
                        match (self.free.pop(), tx_room > 0) {
                            (Some(addr), true) => {
                                // A TX frame of ours, never the RX frame.
                                let out = self.frame_mut(addr);
                                let len = handle(datagram.src(), request, &mut out[at..]);
                                match (len > 0).then(|| reply.write(out, len)).flatten() {
                                    Some(len) => {
                                        self.tx.set(
                                            tx_prod,
                                            libc::xdp_desc {
                                                addr,
                                                len: len as u32,
                                                options: 0,
                                            },
                                        );
                                        tx_prod = tx_prod.wrapping_add(1);
                                        tx_room -= 1;
                                        done.replied += 1;
                                    }
                                    None => self.free.push(addr),
                                }
                            }
                            (addr, _) => {
                                self.free.extend(addr);
                                done.dropped += 1;
                            }
                        }
                    }
                    Err(_) => done.skipped += 1,
                }
            }
            // The RX frame goes back to the kernel, at its frame's start.
            self.fill
                .set(fill_prod.wrapping_add(i), d.addr & !(FRAME as u64 - 1));
        }
        self.rx
            .consumer()
            .store(rx_cons.wrapping_add(n), Ordering::Release);
        self.fill
            .producer()
            .store(fill_prod.wrapping_add(n), Ordering::Release);
        if done.replied > 0 {
            self.tx.producer().store(tx_prod, Ordering::Release);
        }
        if done.replied > 0 || self.tx.needs_wakeup() {
            self.kick()?;
        }
        if self.fill.needs_wakeup() {
            // A recvfrom with nothing to read makes the driver refill.
            // SAFETY: no buffer; MSG_DONTWAIT.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
        Ok(done)
    }

    /// Tells the kernel the TX ring has frames (copy mode sends them from
    /// this system call).
    fn kick(&self) -> io::Result<()> {
        // SAFETY: an empty sendto on our own socket.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => {}
                _ => return Err(e),
            }
        }
        Ok(())
    }
}

impl AsRawFd for Xsk {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // The rings unmap themselves; the socket closes after. The UMEM is
        // unmapped here: the kernel holds its pages until the socket closes.
        // SAFETY: the mapping made in `bind`, unmapped once.
        unsafe { libc::munmap(self.umem.as_ptr().cast(), UMEM_LEN) };
    }
}

/// In a worker's mio poll: readable when the RX ring has frames.
impl mio::event::Source for Xsk {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.fd.as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        mio::unix::SourceFd(&self.fd.as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        mio::unix::SourceFd(&self.fd.as_raw_fd()).deregister(registry)
    }
}
