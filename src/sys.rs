//! What shoal asks of the kernel about itself: the soft `RLIMIT_NOFILE`
//! raised before it binds, (Linux) a lower priority for the control thread
//! than for the packet workers, and the physical memory (which a sandboxed
//! `/proc`, e.g. systemd's `ProcSubset=pid`, may not show).
//!
//! systemd and most shells start services with a soft limit of 1024 open
//! files, below what shoal may use (every worker may hold
//! `--http-max-connections` connections, plus its sockets). The hard limit is
//! usually far higher, and an unprivileged process may raise its soft limit up
//! to it, so shoal does that once at start-up instead of asking every operator
//! to set `LimitNOFILE=`.
//!
//! The two libc calls need `unsafe`; the lints in `Cargo.toml` list the few
//! places the crate allows it.
#![allow(unsafe_code)]

use std::io;

/// The soft and hard limits on open files, before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub before: u64,
    pub after: u64,
    pub hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (capped at `cap`: an
/// "unlimited" hard limit is not a useful soft one, and some kernels refuse
/// soft limits above `fs.nr_open`).
// rlim_t is u64 on Linux but not on every Unix: the casts are needed there.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile(cap: u64) -> io::Result<NofileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the duration of the call,
    // and getrlimit writes nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur as u64;
    let hard = lim.rlim_max as u64;
    let target = hard.min(cap);
    if target <= before {
        return Ok(NofileLimit {
            before,
            after: before,
            hard,
        });
    }
    let new = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: `new` is a valid `rlimit` that setrlimit only reads; the soft
    // limit stays at or below the unchanged hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(NofileLimit {
        before,
        after: target,
        hard,
    })
}

/// Set the calling thread's nice value to `nice` (Linux: `setpriority`
/// with `PRIO_PROCESS` and id 0 acts on the calling thread alone, not the
/// process). Raising it needs no privilege; lowering it below the current
/// value needs `CAP_SYS_NICE`.
#[cfg(target_os = "linux")]
pub fn nice_this_thread(nice: i32) -> io::Result<()> {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's nice value (Linux).
#[cfg(target_os = "linux")]
pub fn thread_nice() -> io::Result<i32> {
    // getpriority may return -1 as a value: errno tells an error from it.
    // SAFETY: as for setpriority; errno is this thread's own.
    unsafe {
        *libc::__errno_location() = 0;
        let v = libc::getpriority(libc::PRIO_PROCESS, 0);
        if v == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v)
    }
}

/// Physical memory in bytes, from `sysinfo(2)` (Linux): needs no `/proc`.
#[cfg(target_os = "linux")]
// c_ulong is u64 on 64-bit targets only: the casts are needed elsewhere.
#[allow(clippy::unnecessary_cast)]
pub fn physical_memory() -> Option<u64> {
    // SAFETY: all-zero is a valid `sysinfo` (plain integers), and the call
    // writes only into the struct it is given.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `sysinfo` for the call.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    (info.totalram as u64).checked_mul(u64::from(info.mem_unit))
}

#[cfg(not(target_os = "linux"))]
pub fn physical_memory() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_the_limit_and_stays_under_the_hard_one() {
        let first = raise_nofile(1 << 20).unwrap();
        assert!(first.after >= first.before);
        assert!(first.after <= first.hard);
        // A second call finds nothing to do.
        let again = raise_nofile(1 << 20).unwrap();
        assert_eq!(again.before, first.after);
        assert_eq!(again.after, first.after);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn physical_memory_agrees_with_meminfo() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kb: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert_eq!(physical_memory(), Some(kb * 1024));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_lowers_its_own_priority_only() {
        let before = thread_nice().unwrap();
        let inner = std::thread::spawn(move || {
            nice_this_thread((before + 5).min(19)).unwrap();
            thread_nice().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inner, (before + 5).min(19));
        assert_eq!(
            thread_nice().unwrap(),
            before,
            "the spawning thread is untouched"
        );
    }
}
