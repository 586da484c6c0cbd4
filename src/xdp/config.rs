//! `--xdp IFACE`: the AF_XDP path's own settings. Compiled in every build,
//! so the flag exists everywhere and a build without the `xdp` feature can
//! refuse it in one line instead of not knowing it.

/// What `--xdp` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpConfig {
    /// The interface whose receive queues get AF_XDP sockets; `None`: off.
    pub iface: Option<String>,
}

/// Whether this build has the AF_XDP path.
pub const BUILT_IN: bool = cfg!(all(feature = "xdp", target_os = "linux"));

impl XdpConfig {
    /// Refuses what cannot work, in one line: a build without the feature,
    /// a name no interface can have (empty, longer than IFNAMSIZ - 1, a `/`,
    /// whitespace).
    pub fn validate(&self) -> Result<(), String> {
        let Some(iface) = &self.iface else {
            return Ok(());
        };
        if !BUILT_IN {
            return Err("--xdp: this shoal was built without AF_XDP support \
                        (build it on Linux with `cargo build --features xdp`)"
                .to_string());
        }
        if iface.is_empty()
            || iface.len() > 15
            || iface.contains('/')
            || iface.chars().any(char::is_whitespace)
        {
            return Err(format!("--xdp: {iface:?} is not a network interface name"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_validate() {
        assert_eq!(XdpConfig::default().validate(), Ok(()));
        let with = |s: &str| XdpConfig {
            iface: Some(s.to_string()),
        };
        for bad in ["", "a/b", "eth 0", "sixteen-chars-xx"] {
            let e = with(bad).validate().unwrap_err();
            assert!(e.starts_with("--xdp: "), "{e}");
        }
        let r = with("eth0").validate();
        if BUILT_IN {
            assert_eq!(r, Ok(()));
        } else {
            assert!(r.unwrap_err().contains("built without AF_XDP"));
        }
    }
}
