//! The rooms of `src/` lean one way.
//!
//! [`ROOMS`] lists every top-level module of the crate, lowest first, with
//! the modules it may import. This test reads the source (not a build
//! artefact, so it needs nothing but the files) and fails on:
//! - a `crate::X` path in a module's non-test code that its row does not allow;
//! - a top-level module missing from the table (a new room must say where it
//!   sits);
//! - a row that allows a module listed after it (the table itself must be a
//!   one-way order, so no cycle can be allowed).
//!
//! Paths are read as `module_cycles.py` reads them: after the first
//! `#[cfg(test)]` of a file, `tests.rs` files and comment lines are skipped.
//! A workspace split (as aquatic does) would let cargo enforce this; one
//! crate with a test keeps the single binary's build simple and says the
//! same thing in one table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every room, lowest first, and what it may import.
const ROOMS: &[(&str, &[&str])] = &[
    // Leaves: no room of the crate below them.
    ("time", &[]),
    ("wire", &[]),
    ("snapshot", &[]),
    ("limit", &[]),
    ("sys", &[]),
    ("xdp", &[]),
    // The map, and who may use it.
    ("swarm", &["snapshot"]),
    ("access", &["swarm", "wire"]),
    // The sans-IO cores.
    ("rendezvous", &["time", "wire"]),
    ("tracker", &["access", "swarm", "time", "wire"]),
    // Counters, and the rooms that take a narrow context.
    ("stats", &["rendezvous", "swarm", "time"]),
    ("state", &["snapshot", "stats", "swarm", "time", "tracker"]),
    (
        "cluster",
        &["access", "snapshot", "stats", "swarm", "time", "tracker"],
    ),
    (
        "api",
        &["access", "stats", "swarm", "time", "tracker", "wire"],
    ),
    // Sockets and loops: the data plane and the control plane.
    (
        "net",
        &[
            "access",
            "api",
            "cluster",
            "limit",
            "rendezvous",
            "stats",
            "swarm",
            "sys",
            "time",
            "tracker",
            "wire",
            "xdp",
        ],
    ),
    // The one room that knows every room above.
    (
        "server",
        &[
            "access",
            "api",
            "cluster",
            "limit",
            "net",
            "rendezvous",
            "snapshot",
            "state",
            "stats",
            "swarm",
            "sys",
            "time",
            "tracker",
            "wire",
            "xdp",
        ],
    ),
    // Tools built on the rooms.
    ("client", &["wire"]),
    (
        "bench",
        &["client", "server", "swarm", "time", "tracker", "wire"],
    ),
    // Flags, their conversion and the tool runners: may use anything.
    (
        "cli",
        &[
            "access",
            "api",
            "bench",
            "client",
            "cluster",
            "limit",
            "net",
            "rendezvous",
            "server",
            "snapshot",
            "state",
            "stats",
            "swarm",
            "time",
            "tracker",
            "wire",
            "xdp",
        ],
    ),
];

/// The top-level modules a file's non-test code names through `crate::`.
fn imports(source: &str) -> BTreeSet<String> {
    let code = source
        .find("#[cfg(test)]")
        .map_or(source, |cut| &source[..cut]);
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c}`: every first segment in the group.
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    found.extend(first_segment(item.trim()));
                }
            } else {
                found.extend(first_segment(rest));
            }
        }
    }
    found
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name.starts_with(|c: char| c.is_ascii_lowercase())).then_some(name)
}

/// Imports by top-level module, over every `.rs` file under `src/`.
fn crate_imports(src: &Path) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut by_room: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".rs") || name == "tests.rs" {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let room = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if room == "main" || room == "lib" {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let entry = by_room.entry(room.clone()).or_default();
            for target in imports(&source) {
                if target != room {
                    entry.insert((target, rel.display().to_string()));
                }
            }
        }
    }
    by_room
}

#[test]
fn every_import_points_down_the_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank: BTreeMap<&str, usize> = ROOMS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (*name, i))
        .collect();
    let mut wrong = Vec::new();
    for (i, (room, allowed)) in ROOMS.iter().enumerate() {
        for dep in *allowed {
            match rank.get(dep) {
                Some(&j) if j < i => {}
                _ => wrong.push(format!(
                    "the table lets {room} import {dep}, which is not listed before it"
                )),
            }
        }
    }
    for (room, targets) in crate_imports(&src) {
        let Some(&i) = rank.get(room.as_str()) else {
            wrong.push(format!(
                "src/{room} is not in the ROOMS table of tests/rooms.rs"
            ));
            continue;
        };
        let allowed = ROOMS[i].1;
        for (target, file) in targets {
            if !allowed.contains(&target.as_str()) {
                wrong.push(format!(
                    "src/{file} imports crate::{target}: {room} may import only {allowed:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "rooms out of order:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_paths_and_skips_tests_and_comments() {
    let source = "use crate::{net::Stop, api};\n\
                  // use crate::cli;\n\
                  fn f() { crate::time::unix_now(); }\n\
                  #[cfg(test)]\nmod tests { use crate::server; }\n";
    let found: Vec<String> = imports(source).into_iter().collect();
    assert_eq!(found, ["api", "net", "time"]);
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// A room stays readable: no source file over 900 lines. Unit tests may
/// live in a sibling `tests.rs`, which this does not count.
#[test]
fn no_source_file_is_over_900_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&src)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .filter_map(|p| {
            let lines = std::fs::read_to_string(&p).unwrap().lines().count();
            (lines > 900).then(|| format!("{} ({lines} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}
