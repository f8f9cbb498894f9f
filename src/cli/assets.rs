//! Owns: `ferrocache assets DIR` (hidden, for packaging: `make deb`, `make install`) — the man
//! page (clap_mangen) and the bash, zsh and fish completions (clap_complete), generated from the
//! one clap tree the command line is parsed with, so they never drift from it.
//! Does not: install anything (the Makefile and the package place the files).

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// `ferrocache assets DIR`.
#[derive(Args, Debug)]
pub struct AssetsCmd {
    /// The directory to write ferrocache.1 and the completions into (created if missing).
    pub dir: PathBuf,
}

/// The files written, by shell: (shell, file name).
pub const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "ferrocache.bash"),
    (Shell::Zsh, "_ferrocache"),
    (Shell::Fish, "ferrocache.fish"),
];

/// Writes the man page and the completions; the exit code.
pub fn run(cmd: AssetsCmd) -> u8 {
    match write(&cmd.dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ferrocache assets: {}: {e}", cmd.dir.display());
            1
        }
    }
}

fn write(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = super::Cli::command().version(env!("CARGO_PKG_VERSION"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join("ferrocache.1"), page)?;
    for (shell, name) in COMPLETIONS {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "ferrocache", &mut out);
        std::fs::write(dir.join(name), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_man_page_and_completions() {
        let dir = std::env::temp_dir().join(format!("ferrocache-assets-{}", std::process::id()));
        assert_eq!(run(AssetsCmd { dir: dir.clone() }), 0);
        let page = std::fs::read_to_string(dir.join("ferrocache.1")).unwrap_or_default();
        assert!(
            page.starts_with(".ie") || page.contains(".TH ferrocache"),
            "{page}"
        );
        assert!(page.contains("metrics\\-listen"), "{page}");
        // The hidden subcommand stays out of what users see.
        assert!(!page.contains("assets"));
        let bash = std::fs::read_to_string(dir.join("ferrocache.bash")).unwrap_or_default();
        assert!(bash.contains("--metrics-listen") && bash.contains("passwd"));
        for (_, name) in COMPLETIONS {
            assert!(dir.join(name).is_file(), "{name}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
