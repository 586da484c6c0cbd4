//! Batched UDP I/O with `recvmmsg(2)` / `sendmmsg(2)` (Linux).
//!
//! One `recvmmsg` fills up to [`BATCH`] datagrams and one `sendmmsg` sends up
//! to [`BATCH`] replies, instead of two syscalls per datagram. On loopback and
//! small packets the syscalls are most of the cost of a request, so this is
//! where the throughput comes from.
//!
//! # Safety
//!
//! Most of the crate's `unsafe` is here (the rest, one call each: getrlimit
//! in `sys.rs`, madvise in `access/list.rs`, a prefetch in `swarm/table.rs`;
//! see the lints in `Cargo.toml`). It is confined to the two syscalls and to
//! reading the kernel-filled socket addresses:
//! - every pointer handed to the kernel points into this struct's heap-boxed
//!   arrays, which are not moved or resized while a call runs (the headers
//!   are rebuilt before each call, so the struct is never self-referential);
//! - lengths passed are the arrays' real lengths (`BATCH`, `BUF_LEN`,
//!   `size_of::<sockaddr_storage>()`), and `msg_len`/`msg_namelen` written back
//!   by the kernel are bounds-checked before use;
//! - `sockaddr_storage` is aligned for and large enough to be read as
//!   `sockaddr_in` or `sockaddr_in6`, which is done only after checking
//!   `ss_family`.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per syscall.
pub const BATCH: usize = 32;
/// Receive buffer per datagram; larger datagrams are truncated (and fail to
/// parse), which no BEP 15 request needs.
pub const BUF_LEN: usize = 2048;

/// What a [`TxBatch::flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    pub bytes: usize,
    pub would_block: usize,
    pub failed: usize,
}

/// Buffers and headers for one batch in each direction. The two halves are
/// separate so a reply can be written while the request is still borrowed.
#[derive(Debug, Default)]
pub struct Batch {
    pub rx: RxBatch,
    pub tx: TxBatch,
}

/// Received datagrams.
pub struct RxBatch {
    rx_bufs: Box<[[u8; BUF_LEN]; BATCH]>,
    rx_names: Box<[libc::sockaddr_storage; BATCH]>,
    rx_iov: Box<[libc::iovec; BATCH]>,
    rx_hdrs: Box<[libc::mmsghdr; BATCH]>,
    /// Datagrams filled by the last `recv`.
    rx_count: usize,
}

/// Replies waiting to be sent.
pub struct TxBatch {
    tx_bufs: Box<[[u8; BUF_LEN]; BATCH]>,
    tx_lens: [usize; BATCH],
    tx_names: Box<[libc::sockaddr_storage; BATCH]>,
    tx_namelens: [libc::socklen_t; BATCH],
    tx_iov: Box<[libc::iovec; BATCH]>,
    tx_hdrs: Box<[libc::mmsghdr; BATCH]>,
    tx_count: usize,
}

impl std::fmt::Debug for RxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxBatch").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxBatch")
            .field("pending", &self.tx_count)
            .finish()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }
}

impl Default for RxBatch {
    fn default() -> Self {
        // SAFETY: all-zero is a valid value for these plain C structs (null
        // pointers, zero lengths, AF_UNSPEC).
        unsafe {
            RxBatch {
                rx_bufs: Box::new([[0; BUF_LEN]; BATCH]),
                rx_names: Box::new(zeroed()),
                rx_iov: Box::new(zeroed()),
                rx_hdrs: Box::new(zeroed()),
                rx_count: 0,
            }
        }
    }
}

impl Default for TxBatch {
    fn default() -> Self {
        // SAFETY: as for RxBatch.
        unsafe {
            TxBatch {
                tx_bufs: Box::new([[0; BUF_LEN]; BATCH]),
                tx_lens: [0; BATCH],
                tx_names: Box::new(zeroed()),
                tx_namelens: [0; BATCH],
                tx_iov: Box::new(zeroed()),
                tx_hdrs: Box::new(zeroed()),
                tx_count: 0,
            }
        }
    }
}

impl RxBatch {
    /// Receive up to `BATCH` datagrams without blocking. `Ok(0)` is never
    /// returned: no datagram is `WouldBlock`.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH {
            self.rx_iov[i] = libc::iovec {
                iov_base: self.rx_bufs[i].as_mut_ptr().cast(),
                iov_len: BUF_LEN,
            };
            set_hdr(
                &mut self.rx_hdrs[i],
                &mut self.rx_names[i],
                size_of::<libc::sockaddr_storage>() as libc::socklen_t,
                &mut self.rx_iov[i],
            );
        }
        // SAFETY: see the module docs; headers point into our boxed arrays.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.rx_hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.rx_count = 0;
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.rx_count = (n as usize).min(BATCH);
        Ok(self.rx_count)
    }

    /// The bytes of datagram `i` of the last `recv` (as [`RxBatch::received`]).
    pub fn payload(&self, i: usize) -> Option<&[u8]> {
        if i >= self.rx_count {
            return None;
        }
        let hdr = &self.rx_hdrs[i];
        if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        Some(&self.rx_bufs[i][..(hdr.msg_len as usize).min(BUF_LEN)])
    }

    /// Datagram `i` of the last `recv`: its bytes and source. `None` for a
    /// source that is not IP, and for a datagram longer than [`BUF_LEN`] (it was
    /// truncated; no tracker request is that long).
    pub fn received(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let req = self.payload(i)?;
        let hdr = &self.rx_hdrs[i];
        let addr = read_addr(&self.rx_names[i], hdr.msg_hdr.msg_namelen)?;
        Some((req, addr))
    }
}

impl TxBatch {
    /// A buffer for the next reply; commit it with [`TxBatch::push_reply`].
    /// `None` when the batch is full (flush first).
    pub fn reply_buf(&mut self) -> Option<&mut [u8; BUF_LEN]> {
        self.tx_bufs.get_mut(self.tx_count)
    }

    /// Queue the reply written into [`TxBatch::reply_buf`] (`len` bytes) for `dst`.
    pub fn push_reply(&mut self, len: usize, dst: SocketAddr) {
        let i = self.tx_count;
        if i >= BATCH {
            return;
        }
        self.tx_lens[i] = len.min(BUF_LEN);
        self.tx_namelens[i] = write_addr(&mut self.tx_names[i], dst);
        self.tx_count += 1;
    }

    /// Send every queued reply. A reply that cannot go is dropped and counted:
    /// as `would_block` when the socket buffer is full, as `failed` otherwise.
    pub fn flush(&mut self, fd: RawFd) -> Flushed {
        let count = std::mem::take(&mut self.tx_count);
        for i in 0..count {
            self.tx_iov[i] = libc::iovec {
                iov_base: self.tx_bufs[i].as_mut_ptr().cast(),
                iov_len: self.tx_lens[i],
            };
            set_hdr(
                &mut self.tx_hdrs[i],
                &mut self.tx_names[i],
                self.tx_namelens[i],
                &mut self.tx_iov[i],
            );
        }
        let mut r = Flushed::default();
        let mut at = 0;
        while at < count {
            // SAFETY: see the module docs; `count - at` headers from `at` are initialised.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.tx_hdrs[at..].as_mut_ptr(),
                    (count - at) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() == io::ErrorKind::WouldBlock {
                    // The send buffer is full: the rest cannot go either.
                    r.would_block += count - at;
                    break;
                }
                // This reply cannot go (e.g. unreachable destination): drop it
                // and carry on with the rest.
                r.failed += 1;
                at += 1;
                continue;
            }
            for h in &self.tx_hdrs[at..at + n as usize] {
                r.bytes += h.msg_len as usize;
            }
            r.sent += n as usize;
            at += n as usize;
        }
        r
    }
}

/// Point one message header at its address and its single buffer. The
/// pointers are taken from the caller's boxed arrays just before the syscall.
fn set_hdr(
    hdr: &mut libc::mmsghdr,
    name: &mut libc::sockaddr_storage,
    namelen: libc::socklen_t,
    iov: &mut libc::iovec,
) {
    hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
    hdr.msg_hdr.msg_namelen = namelen;
    hdr.msg_hdr.msg_iov = iov;
    hdr.msg_hdr.msg_iovlen = 1;
    hdr.msg_hdr.msg_control = std::ptr::null_mut();
    hdr.msg_hdr.msg_controllen = 0;
    hdr.msg_hdr.msg_flags = 0;
    hdr.msg_len = 0;
}

fn read_addr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: family checked; sockaddr_storage is large enough and aligned.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn write_addr(ss: &mut libc::sockaddr_storage, addr: SocketAddr) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            sin.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn address_round_trip() {
        for addr in ["192.0.2.7:6969", "[2001:db8::1]:443", "[::ffff:10.0.0.1]:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            // SAFETY: all-zero sockaddr_storage is valid.
            let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
            let len = write_addr(&mut ss, addr);
            assert_eq!(read_addr(&ss, len), Some(addr));
        }
    }

    #[test]
    fn batch_echo_over_loopback() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut batch = Batch::new();
        assert_eq!(
            batch.rx.recv(server.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        for i in 0..40u8 {
            client
                .send_to(&[i; 3], server.local_addr().unwrap())
                .unwrap();
        }
        let mut got = Vec::new();
        // Loopback delivers synchronously: every datagram is queued once
        // send_to returns, so draining to WouldBlock sees all 40.
        loop {
            match batch.rx.recv(server.as_raw_fd()) {
                Ok(n) => {
                    assert!(n <= BATCH);
                    for i in 0..n {
                        let (bytes, src) = batch.rx.received(i).unwrap();
                        assert_eq!(src, client.local_addr().unwrap());
                        got.push(bytes.to_vec());
                        let buf = batch.tx.reply_buf().unwrap();
                        buf[..bytes.len()].fill(bytes[0].wrapping_add(100));
                        batch.tx.push_reply(bytes.len(), src);
                    }
                    assert_eq!(batch.tx.flush(server.as_raw_fd()).sent, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, (0..40u8).map(|i| vec![i; 3]).collect::<Vec<_>>());
        // A datagram longer than the buffer is reported as truncated: skipped.
        client
            .send_to(&vec![1u8; BUF_LEN + 1], server.local_addr().unwrap())
            .unwrap();
        assert_eq!(batch.rx.recv(server.as_raw_fd()).unwrap(), 1);
        assert!(batch.rx.received(0).is_none());
        assert!(batch.rx.received(1).is_none(), "beyond the last recv");
        let mut buf = [0u8; 16];
        for i in 0..40u8 {
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i + 100; 3]);
        }
    }
}
