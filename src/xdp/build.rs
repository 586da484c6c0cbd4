//! Build script: with the `xdp` feature, compiles the XDP program
//! (`src/xdp/prog.c`) to BPF with clang into `OUT_DIR/prog.o`, which
//! `src/xdp/prog.rs` embeds, and links libbpf, which loads it. Without the
//! feature it does nothing, so a default build needs no C tool chain.
//!
//! Needs (Debian): clang, libbpf-dev (the BPF headers and libbpf), and the
//! kernel UAPI headers of the host's multiarch directory.

// A build script reports failure by panicking.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/xdp/build.rs");
    println!("cargo:rerun-if-changed=src/xdp/prog.c");
    if std::env::var_os("CARGO_FEATURE_XDP").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // <asm/types.h> and friends live under the multiarch directory on Debian.
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", "src/xdp/prog.c", "-o"])
        .arg(out.join("prog.o"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("the xdp feature: `{clang} -target bpf` failed on src/xdp/prog.c ({s}); needs clang and libbpf-dev"),
        Err(e) => panic!("the xdp feature needs clang (apt install clang libbpf-dev): {e}"),
    }
    println!("cargo:rustc-link-lib=bpf");
}
