//! What the host allows this process: the memory the swarm map's default
//! budget is taken from. Read once, at start-up.

/// What this process may use, in bytes, and where that figure comes from:
/// the least of its cgroup's memory limit (cgroup v2 `memory.max` of its own
/// cgroup and each ancestor, or v1 `memory.limit_in_bytes`), its address-space
/// limit (`RLIMIT_AS`, as `ulimit -v` sets it, less what is mapped already:
/// threads and allocator arenas take address space the map never sees) and
/// physical RAM (`MemTotal`, or `sysinfo(2)` where a sandbox hides
/// `/proc/meminfo`). `None` where none can be read (not Linux). Read once
/// at start-up.
pub fn memory_limit() -> Option<(u64, &'static str)> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    #[cfg(unix)]
    let read = move |p: &str| {
        read(p).or_else(|| {
            (p == "/proc/meminfo")
                .then(crate::sys::physical_memory)
                .flatten()
                .map(|b| format!("MemTotal: {} kB\n", b / 1024))
        })
    };
    memory_limit_from(read)
}

/// [`memory_limit`] over any file reader (tests give it a fake /proc and /sys).
fn memory_limit_from(read: impl Fn(&str) -> Option<String>) -> Option<(u64, &'static str)> {
    let mut best: Option<(u64, &'static str)> = None;
    let mut offer = |bytes: Option<u64>, source: &'static str| {
        if let Some(b) = bytes.filter(|&b| b > 0 && b < 1 << 60) {
            if best.is_none_or(|(x, _)| b < x) {
                best = Some((b, source));
            }
        }
    };
    let kb = |text: Option<String>, key: &str| {
        text?
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    offer(kb(read("/proc/meminfo"), "MemTotal:"), "physical memory");
    // /proc/self/limits: "Max address space  unlimited  unlimited  bytes".
    let rlimit_as = read("/proc/self/limits").and_then(|l| {
        let line = l.lines().find(|l| l.starts_with("Max address space"))?;
        line.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    if let Some(limit) = rlimit_as {
        let mapped = kb(read("/proc/self/status"), "VmSize:").unwrap_or(0);
        offer(
            Some(limit.saturating_sub(mapped)),
            "address-space limit (ulimit -v)",
        );
    }
    let cgroups = read("/proc/self/cgroup").unwrap_or_default();
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next(), f.next(), f.next().unwrap_or("/"));
        let (root, file) = match controllers {
            Some("") => ("/sys/fs/cgroup", "memory.max"),
            Some(c) if c.split(',').any(|c| c == "memory") => {
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
            }
            _ => continue,
        };
        // The cgroup itself and its ancestors (the tightest applies); inside
        // a container the path may be the host's, so the mount's root counts too.
        let mut dir = path.trim_end_matches('/').to_string();
        loop {
            let value = read(&format!("{root}{dir}/{file}"));
            offer(
                value.and_then(|v| v.trim().parse().ok()),
                "cgroup memory limit",
            );
            match dir.rfind('/') {
                Some(i) => dir.truncate(i),
                None => break,
            }
        }
    }
    best
}

/// The default memory budget of the swarm map: half of [`memory_limit`],
/// leaving the other half to the process itself (buffers, threads, the
/// allocator's slack); 0 (no budget) where no limit can be read.
pub fn default_max_memory() -> (u64, &'static str) {
    memory_limit().map_or((0, "no limit found"), |(b, source)| (b / 2, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_is_the_least_of_cgroup_ulimit_and_ram() {
        use std::collections::HashMap;
        let fs = |files: &[(&str, &str)]| {
            let files: HashMap<String, String> = files
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect();
            move |p: &str| files.get(p).cloned()
        };
        let meminfo = (
            "/proc/meminfo",
            "MemTotal:       16000000 kB\nMemFree: 1 kB\n",
        );
        let limits = |v: &str| {
            format!("Limit Soft Hard Units\nMax address space         {v}            {v}            bytes\n")
        };
        // RAM only.
        let ram = memory_limit_from(fs(&[meminfo]));
        assert_eq!(ram, Some((16_000_000 * 1024, "physical memory")));
        // cgroup v2: the tightest of the cgroup and its ancestors; "max" is no limit.
        let v2 = memory_limit_from(fs(&[
            meminfo,
            ("/proc/self/cgroup", "0::/a/b\n"),
            ("/sys/fs/cgroup/a/b/memory.max", "max\n"),
            ("/sys/fs/cgroup/a/memory.max", "536870912\n"),
        ]));
        assert_eq!(v2, Some((512 << 20, "cgroup memory limit")));
        // cgroup v1 (a huge value is no limit) beside a tighter ulimit -v,
        // less what is mapped already.
        let al = limits("300000000");
        let v1 = memory_limit_from(fs(&[
            meminfo,
            ("/proc/self/cgroup", "4:memory:/x\n1:cpu:/\n"),
            (
                "/sys/fs/cgroup/memory/x/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                "1073741824\n",
            ),
            ("/proc/self/limits", al.as_str()),
            ("/proc/self/status", "VmSize:\t   20000 kB\n"),
        ]));
        assert_eq!(
            v1,
            Some((
                300_000_000 - 20_000 * 1024,
                "address-space limit (ulimit -v)"
            ))
        );
        let unlimited = limits("unlimited");
        let none = memory_limit_from(fs(&[("/proc/self/limits", unlimited.as_str())]));
        assert_eq!(none, None);
    }
}
