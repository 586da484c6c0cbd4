//! What `/metrics` reads from `/proc` at scrape time (Linux). Plain file
//! reads, no `unsafe`; each reader returns `None` where `/proc` is missing or
//! unreadable, and its series are then left out rather than reported as 0.

use std::collections::HashSet;
use std::fs;

/// `USER_HZ`: the unit of the tick counts in `/proc/<pid>/stat`. The
/// kernel fixes it at 100 for user space on every architecture Linux
/// ships (whatever its internal `HZ`).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub start_time_secs: u64,
    pub open_fds: u64,
}

pub fn process() -> Option<Process> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let boot = fs::read_to_string("/proc/stat").ok()?;
    let open_fds = fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse(&stat, &status, &boot, open_fds)
}

/// From `/proc/self/stat` (utime, stime, starttime), `/proc/self/status`
/// (VmRSS) and `/proc/stat` (btime).
pub fn parse(stat: &str, status: &str, boot: &str, open_fds: u64) -> Option<Process> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields that follow start after its last ')'. Field 3 is index 0.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i)?.parse::<u64>().ok();
    let (utime, stime, start) = (tick(11)?, tick(12)?, tick(19)?);
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(Process {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        resident_bytes: kb * 1024,
        start_time_secs: btime + start / USER_HZ as u64,
        open_fds,
    })
}

/// Receive drops of this process's UDP sockets: the `drops` column of
/// `/proc/net/udp{,6}` for the socket inodes `/proc/self/fd` links to.
pub fn udp_drops() -> Option<u64> {
    let mut inodes = HashSet::new();
    for entry in fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if let Ok(link) = fs::read_link(entry.path()) {
            if let Some(inode) = socket_inode(&link.to_string_lossy()) {
                inodes.insert(inode);
            }
        }
    }
    let mut total = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            *total.get_or_insert(0) += drops_of(&text, &inodes);
        }
    }
    total
}

/// Receive drops of the UDP sockets `inodes` (`/proc/net/udp{,6}`'s `drops`
/// column), one count per inode in order; 0 for an inode not listed.
/// `None` when neither table can be read.
pub fn udp_drops_of(inodes: &[u64]) -> Option<Vec<u64>> {
    let mut out = vec![0; inodes.len()];
    let mut read = false;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            read = true;
            add_drops(&text, inodes, &mut out);
        }
    }
    read.then_some(out)
}

/// Add the `drops` of each row of `table` whose inode is `inodes[i]` to `out[i]`.
pub fn add_drops(table: &str, inodes: &[u64], out: &mut [u64]) {
    for row in table.lines().skip(1) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let (Some(inode), Some(drops)) = (
            cols.get(9).and_then(|c| c.parse::<u64>().ok()),
            cols.last().and_then(|c| c.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if let Some(i) = inodes.iter().position(|&n| n == inode) {
            out[i] += drops;
        }
    }
}

/// The socket inode of this process's file descriptor `fd`
/// (`/proc/self/fd/FD` links to `socket:[INODE]`).
pub fn fd_socket_inode(fd: i32) -> Option<u64> {
    let link = fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    socket_inode(&link.to_string_lossy())
}

/// `socket:[12345]` → 12345.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Sum of the `drops` column (the last) of the rows whose `inode`
/// column (the tenth) is one of `inodes`.
pub fn drops_of(table: &str, inodes: &HashSet<u64>) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            if !inodes.contains(&inode) {
                return None;
            }
            cols.last()?.parse::<u64>().ok()
        })
        .sum()
}
