//! The AF_XDP path of one interface, put in place at start-up: the XDP
//! program attached with the tracker's ports, and one AF_XDP socket per
//! receive queue that a worker serves (queue i to worker i). Queues beyond
//! the workers get no socket: the program passes their datagrams to the
//! kernel, where the workers' ordinary sockets answer them.

use super::prog::{Error, Program};
use super::xsk::Xsk;
use std::io;

/// The program and the sockets; dropping it detaches the program.
#[derive(Debug)]
pub struct XdpPath {
    /// One per served queue, in queue order; taken by the workers.
    pub sockets: Vec<Xsk>,
    /// Receive queues of the interface.
    pub queues: u32,
    // Last: dropped after the sockets, so no frame is redirected to a
    // socket that is gone.
    program: Program,
}

impl XdpPath {
    /// Attaches the program to `iface` for `ports` and binds a socket to
    /// each of its first `workers` receive queues.
    pub fn open(iface: &str, ports: &[u16], workers: usize) -> Result<XdpPath, Error> {
        let queues = rx_queues(iface).unwrap_or(1).max(1);
        let program = Program::attach(iface, ports)?;
        let mtu = std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
            .ok()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(1500);
        let served = queues.min(u32::try_from(workers).unwrap_or(u32::MAX));
        let mut sockets = Vec::with_capacity(served as usize);
        for q in 0..served {
            let mut xsk = Xsk::bind(program.ifindex(), q).map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    Error::NotPermitted("opening an AF_XDP socket")
                }
                _ => Error::Other("binding an AF_XDP socket to a queue", e, String::new()),
            })?;
            xsk.set_mtu(mtu);
            program.insert(q, std::os::fd::AsRawFd::as_raw_fd(&xsk))?;
            sockets.push(xsk);
        }
        Ok(XdpPath {
            sockets,
            queues,
            program,
        })
    }

    /// Frames the program matched, summed over CPUs.
    pub fn matched(&self) -> io::Result<u64> {
        self.program.matched()
    }
}

/// Receive queues of `iface`, from sysfs.
pub fn rx_queues(iface: &str) -> io::Result<u32> {
    let n = std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}
