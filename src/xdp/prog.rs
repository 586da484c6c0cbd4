//! The XDP program (`src/xdp/prog.c`, built by `src/xdp/build.rs` and
//! embedded here): loaded with libbpf, attached to one interface in native
//! (driver) mode, told the tracker's ports, detached on drop.
//!
//! Native mode only: in generic (SKB) mode every frame has already paid for
//! the socket buffer the AF_XDP path exists to skip, so an interface whose
//! driver has no XDP support is an error at start-up, never a silent
//! fallback.
//!
//! # Safety
//!
//! The `unsafe` here is calls into libbpf (and `if_nametoindex`):
//! - the object buffer handed to `bpf_object__open_mem` is the `'static`
//!   embedded program; libbpf copies what it keeps;
//! - the `bpf_object` pointer is checked for null, owned by [`Program`] alone
//!   and closed exactly once, in `Drop`; the program and map fds it hands out
//!   belong to it and are used only while it lives;
//! - every key and value pointer passed to `bpf_map_*_elem` points to a live
//!   local of the map's key/value size (a percpu read gets a buffer of one
//!   8-byte slot per possible CPU, as the kernel writes);
//! - C strings are NUL-terminated `CString`s or literals that outlive the call.
#![allow(unsafe_code)]

use parking_lot::Mutex;
use std::ffi::{c_char, c_int, c_void, CString};
use std::fmt;
use std::io;

/// The compiled program.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/prog.o"));

/// `XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_DRV_MODE` (linux/if_link.h):
/// never replace another program, never fall back to generic mode.
const ATTACH_FLAGS: u32 = 1 | (1 << 2);
const DRV_MODE: u32 = 1 << 2;

#[repr(C)]
struct BpfObject {
    _private: [u8; 0],
}
#[repr(C)]
struct BpfProgram {
    _private: [u8; 0],
}

#[link(name = "bpf")]
extern "C" {
    fn bpf_object__open_mem(buf: *const c_void, size: usize, opts: *const c_void)
        -> *mut BpfObject;
    fn bpf_object__load(obj: *mut BpfObject) -> c_int;
    fn bpf_object__close(obj: *mut BpfObject);
    fn bpf_object__find_program_by_name(
        obj: *const BpfObject,
        name: *const c_char,
    ) -> *mut BpfProgram;
    fn bpf_object__find_map_fd_by_name(obj: *const BpfObject, name: *const c_char) -> c_int;
    fn bpf_program__fd(prog: *const BpfProgram) -> c_int;
    fn bpf_map_update_elem(
        fd: c_int,
        key: *const c_void,
        value: *const c_void,
        flags: u64,
    ) -> c_int;
    fn bpf_map_lookup_elem(fd: c_int, key: *const c_void, value: *mut c_void) -> c_int;
    fn bpf_xdp_attach(ifindex: c_int, prog_fd: c_int, flags: u32, opts: *const c_void) -> c_int;
    fn bpf_xdp_detach(ifindex: c_int, flags: u32, opts: *const c_void) -> c_int;
    fn libbpf_num_possible_cpus() -> c_int;
    fn libbpf_set_print(f: Option<PrintFn>) -> Option<PrintFn>;
}

type PrintFn = unsafe extern "C" fn(c_int, *const c_char, *mut c_void) -> c_int;

extern "C" {
    fn vsnprintf(buf: *mut c_char, n: usize, fmt: *const c_char, args: *mut c_void) -> c_int;
}

/// Why the program could not be put in place, said in one line.
#[derive(Debug)]
pub enum Error {
    /// No interface of that name (in this network namespace).
    NoInterface(String),
    /// Loading needs root, or CAP_BPF and CAP_NET_ADMIN.
    NotPermitted(&'static str),
    /// The interface's driver has no native XDP.
    NoDriverSupport(String),
    /// The interface already runs an XDP program.
    Busy(String),
    /// Anything else: the step that failed, the error, and libbpf's last
    /// message (often the kernel's own reason), if it printed one.
    Other(&'static str, io::Error, String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoInterface(i) => write!(f, "--xdp: no network interface named {i:?}"),
            Error::NotPermitted(step) => write!(
                f,
                "--xdp: {step} was refused: run as root or with CAP_BPF and CAP_NET_ADMIN"
            ),
            Error::NoDriverSupport(i) => write!(
                f,
                "--xdp: the driver of {i} has no native XDP support (generic mode is not used)"
            ),
            Error::Busy(i) => write!(f, "--xdp: {i} already has an XDP program attached"),
            Error::Other(step, e, said) if said.is_empty() => {
                write!(f, "--xdp: {step} failed: {e}")
            }
            Error::Other(step, e, said) => write!(f, "--xdp: {step} failed: {e} ({said})"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    fn other(step: &'static str, e: io::Error) -> Error {
        Error::Other(step, e, last_message())
    }
}

/// libbpf's last warning, kept for the error line instead of printed on
/// stderr (libbpf prints several lines per failure, some misleading, such
/// as a hint about RLIMIT_MEMLOCK when the real cause is a missing
/// capability). Start-up only, so a mutex costs nothing.
static LAST: Mutex<String> = Mutex::new(String::new());

fn last_message() -> String {
    std::mem::take(&mut *LAST.lock())
}

/// `LIBBPF_WARN` (libbpf.h): warnings; 1 is info, 2 debug.
const LIBBPF_WARN: c_int = 0;

/// libbpf's print callback: formats the message with `vsnprintf`, keeps the
/// last warning for [`Error`], and logs everything at debug.
///
/// The `va_list` parameter is declared as a pointer: on x86-64 and AArch64
/// a `va_list` argument is passed as a pointer to the caller's list, and it
/// is handed on, untouched, to `vsnprintf`, which takes it the same way.
unsafe extern "C" fn on_libbpf_print(level: c_int, fmt: *const c_char, args: *mut c_void) -> c_int {
    let mut buf = [0u8; 512];
    // SAFETY: `buf` is writable for its length; `fmt` and `args` come from
    // libbpf as a format and its arguments.
    let n = unsafe { vsnprintf(buf.as_mut_ptr().cast(), buf.len(), fmt, args) };
    let Ok(n) = usize::try_from(n) else { return 0 };
    let text = String::from_utf8_lossy(&buf[..n.min(buf.len() - 1)]);
    let text = text.trim();
    log::debug!("libbpf: {text}");
    if level == LIBBPF_WARN && !text.is_empty() {
        *LAST.lock() = text.replace('\n', " ");
    }
    0
}

/// libbpf returns `-errno` (and sets errno) on failure.
fn check(ret: c_int, step: &'static str) -> Result<c_int, Error> {
    if ret >= 0 {
        return Ok(ret);
    }
    let e = io::Error::from_raw_os_error(-ret);
    Err(match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Error::NotPermitted(step),
        _ => Error::Other(step, e, last_message()),
    })
}

/// The program, loaded and attached to one interface until dropped. Drop it
/// in the network namespace it was attached in: detaching goes through
/// that namespace's netlink, by interface index.
#[derive(Debug)]
pub struct Program {
    obj: *mut BpfObject,
    ifindex: c_int,
    xsks: c_int,
    matched: c_int,
}

// SAFETY: the bpf_object is owned by this Program alone and libbpf ties it
// to no thread; moving the Program moves that ownership. Not Sync: the
// methods are called from one thread at a time.
unsafe impl Send for Program {}

impl Program {
    /// Loads the program, sets `ports` in its port table and attaches it to
    /// `iface` in native mode.
    pub fn attach(iface: &str, ports: &[u16]) -> Result<Program, Error> {
        // SAFETY: installs a callback with libbpf's signature.
        unsafe { libbpf_set_print(Some(on_libbpf_print)) };
        last_message();
        let name = CString::new(iface).map_err(|_| Error::NoInterface(iface.to_string()))?;
        // SAFETY: a NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        let ifindex = c_int::try_from(ifindex)
            .ok()
            .filter(|&i| i > 0)
            .ok_or_else(|| Error::NoInterface(iface.to_string()))?;
        // SAFETY: the embedded object is 'static; null is checked below.
        let obj =
            unsafe { bpf_object__open_mem(OBJECT.as_ptr().cast(), OBJECT.len(), std::ptr::null()) };
        if obj.is_null() {
            return Err(Error::other(
                "opening the XDP object",
                io::Error::last_os_error(),
            ));
        }
        // From here `prog` owns `obj`: an early return closes it.
        let mut prog = Program {
            obj,
            ifindex: 0,
            xsks: -1,
            matched: -1,
        };
        // SAFETY: `obj` is a live object owned by `prog`.
        check(unsafe { bpf_object__load(obj) }, "loading the XDP program")?;
        let find = |map: &'static [u8]| {
            // SAFETY: `obj` is live; `map` is a NUL-terminated literal.
            let fd = unsafe { bpf_object__find_map_fd_by_name(obj, map.as_ptr().cast()) };
            check(fd, "finding the program's maps")
        };
        prog.xsks = find(b"xsks\0")?;
        prog.matched = find(b"matched\0")?;
        let port_map = find(b"ports\0")?;
        for &port in ports {
            let key = u32::from(port);
            let on: u8 = 1;
            // SAFETY: key and value are live locals of the map's sizes (u32, u8).
            let ret = unsafe {
                bpf_map_update_elem(port_map, (&raw const key).cast(), (&raw const on).cast(), 0)
            };
            check(ret, "setting the tracker's ports")?;
        }
        // SAFETY: `obj` is live; the name is a NUL-terminated literal.
        let p = unsafe { bpf_object__find_program_by_name(obj, c"shoal_xdp".as_ptr()) };
        if p.is_null() {
            return Err(Error::other(
                "finding the XDP program",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `p` belongs to the live `obj`.
        let fd = check(unsafe { bpf_program__fd(p) }, "loading the XDP program")?;
        // SAFETY: plain integers; a null opts pointer is allowed.
        let ret = unsafe { bpf_xdp_attach(ifindex, fd, ATTACH_FLAGS, std::ptr::null()) };
        match check(ret, "attaching the XDP program") {
            Ok(_) => {}
            Err(Error::Other(_, e, _)) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                return Err(Error::NoDriverSupport(iface.to_string()))
            }
            Err(Error::Other(_, e, _))
                if e.raw_os_error() == Some(libc::EBUSY)
                    || e.raw_os_error() == Some(libc::EEXIST) =>
            {
                return Err(Error::Busy(iface.to_string()))
            }
            Err(e) => return Err(e),
        }
        prog.ifindex = ifindex;
        Ok(prog)
    }

    /// The interface's index (for binding AF_XDP sockets to its queues).
    pub fn ifindex(&self) -> u32 {
        self.ifindex as u32
    }

    /// Redirects the tracker's datagrams arriving on `queue` to the AF_XDP
    /// socket `fd` (bound to that queue of this interface).
    pub fn insert(&self, queue: u32, fd: std::os::fd::RawFd) -> Result<(), Error> {
        // SAFETY: key and value are live locals of the XSKMAP's sizes (u32, u32).
        let ret = unsafe {
            bpf_map_update_elem(
                self.xsks,
                (&raw const queue).cast(),
                (&raw const fd).cast(),
                0,
            )
        };
        check(ret, "adding the AF_XDP socket to the program's map").map(|_| ())
    }

    /// Frames the program matched and handed to the queue's socket (or, with
    /// no socket on that queue, to the kernel), summed over CPUs.
    pub fn matched(&self) -> io::Result<u64> {
        // SAFETY: no arguments; reads the system's possible-CPU list.
        let cpus = unsafe { libbpf_num_possible_cpus() };
        let cpus = usize::try_from(cpus).map_err(|_| io::Error::from_raw_os_error(-cpus))?;
        let mut values = vec![0u64; cpus];
        let key = 0u32;
        // SAFETY: the value buffer holds one u64 per possible CPU, what a
        // lookup in a per-CPU array of u64 writes.
        let ret = unsafe {
            bpf_map_lookup_elem(
                self.matched,
                (&raw const key).cast(),
                values.as_mut_ptr().cast(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(values.iter().sum())
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.ifindex > 0 {
            // SAFETY: plain integers; detaches what `attach` attached.
            unsafe { bpf_xdp_detach(self.ifindex, DRV_MODE, std::ptr::null()) };
        }
        // SAFETY: `obj` came from `bpf_object__open_mem`, is non-null, and
        // is closed only here.
        unsafe { bpf_object__close(self.obj) };
    }
}
