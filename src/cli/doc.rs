//! Shell completions and the man page, generated from the clap definitions in
//! [`super::defs`] (the same ones that parse the command line), so neither can
//! drift from the flags shoal actually accepts. Backs `shoal completions SHELL`
//! and `shoal man`; output goes to any writer, nothing here touches the disk.

use super::defs::{Cli, Shell};
use clap::CommandFactory;
use std::io::{self, Write};

/// Write the completion script for `shell` (source it, or drop it where the
/// shell looks: e.g. `/usr/share/bash-completion/completions/shoal`).
///
/// The script is built in memory first: clap_complete panics on a write error,
/// and `shoal completions bash | head` must not panic.
pub fn completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    out.write_all(&buf)
}

/// Write `shoal(1)` in roff (`shoal man > shoal.1; man ./shoal.1`). Options show
/// their environment-variable twins, as `--help` does.
pub fn man(out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(shell: Shell) -> String {
        let mut buf = Vec::new();
        completions(shell, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn bash_completion_knows_flags_and_subcommands() {
        let s = completion(Shell::Bash);
        assert!(s.contains("--peer-timeout"), "{s}");
        assert!(s.contains("--http-client-ip-header"));
        for sub in ["serve", "announce", "scrape", "bench"] {
            assert!(s.contains(sub), "bash completion lacks subcommand {sub}");
        }
        assert!(s.contains("complete -F"), "not a bash completion script");
    }

    #[test]
    fn zsh_and_fish_completions_know_flags() {
        let z = completion(Shell::Zsh);
        assert!(z.starts_with("#compdef shoal"), "{z}");
        assert!(z.contains("--peer-timeout"));
        let f = completion(Shell::Fish);
        assert!(f.contains("complete -c shoal"), "{f}");
        assert!(f.contains("-l peer-timeout"));
        assert!(f.contains("announce"));
    }

    #[test]
    fn man_page_has_sections_flags_and_env_twins() {
        let mut buf = Vec::new();
        man(&mut buf).unwrap();
        let m = String::from_utf8(buf).unwrap();
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS"] {
            assert!(m.contains(section), "man page lacks {section}:\n{m}");
        }
        assert!(m.contains(".TH shoal 1"), "{m}");
        assert!(
            m.contains(".SH SUBCOMMANDS") && m.contains("announce"),
            "{m}"
        );
        // roff escapes '-' as '\-'.
        assert!(m.contains("\\-\\-udp"), "{m}");
        assert!(m.contains("SHOAL_UDP"), "{m}");
        assert!(m.contains("\\-\\-peer\\-timeout"));
    }
}
