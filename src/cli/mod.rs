//! Owns: the `ferrocache` command line — one clap tree holding the daemon's memcached-style
//! options (defined in `config::Args`) and the tool subcommands (`ring`, `passwd`, `cluster
//! push|supervise|status`, `help`, and the hidden `assets` for packaging); what it resolves to (a daemon `Config` or a finished tool with its exit code).
//! Does not: define or validate the daemon's options (see `config`), run the daemon (see
//! `server`), set up logging or exit the process (see `main.rs`).
//!
//! Exit codes: 0 for success and for help, 64 (`EX_USAGE`) for usage errors, 1 for a failed tool
//! run, and 2 for every `ring` error (as `ring` always had).

pub mod assets;
pub mod cluster;
pub mod passwd;
pub mod ring;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{self, Config, EX_USAGE};

/// The whole command line: either daemon options or one subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "ferrocache",
    about = "A memcached-compatible, multi-threaded cache daemon",
    disable_version_flag = true,
    args_override_self = true,
    args_conflicts_with_subcommands = true,
    after_help = "Without a command, ferrocache runs the daemon with the options above."
)]
pub struct Cli {
    #[command(flatten)]
    pub daemon: config::Args,
    #[command(subcommand)]
    pub tool: Option<Tool>,
}

/// The subcommands besides the daemon.
#[derive(Subcommand, Debug)]
pub enum Tool {
    /// Print the libmemcached-compatible ketama placement of keys, and what a change moves.
    #[command(override_help = crate::cluster::ring::RING_USAGE)]
    Ring(ring::RingCmd),
    /// Print a hashed credentials-file line for USER.
    Passwd(passwd::PasswdCmd),
    /// Manage Auto Discovery membership.
    Cluster(Box<cluster::ClusterCmd>),
    /// Write the man page and shell completions into a directory (packaging).
    #[command(hide = true)]
    Assets(assets::AssetsCmd),
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the daemon.
    Daemon(Box<Config>),
    /// Print the version (`-V`).
    Version,
    /// Run a tool subcommand.
    Tool(Tool),
    /// Nothing to run: print `text` (to stdout when `code` is 0, else to stderr) and exit.
    Exit { text: String, code: u8 },
}

/// Resolves the process arguments (`argv[0]` first).
pub fn parse(argv: Vec<String>) -> Invocation {
    let matches = match Cli::command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => return clap_exit(e, usage_code(&argv)),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_exit(e, EX_USAGE as u8),
    };
    if let Some(tool) = cli.tool {
        return Invocation::Tool(tool);
    }
    let version = cli.daemon.version;
    match Config::from_command_line(cli.daemon, &argv) {
        Ok(_) if version => Invocation::Version,
        Ok(cfg) => Invocation::Daemon(Box::new(cfg)),
        Err(e) => Invocation::Exit {
            text: if e.code == 0 {
                e.msg
            } else {
                format!("{}\n", e.msg)
            },
            code: e.code as u8,
        },
    }
}

/// Runs a tool subcommand; returns the exit code.
pub fn run_tool(tool: Tool) -> u8 {
    match tool {
        Tool::Ring(cmd) => ring::run(cmd),
        Tool::Passwd(cmd) => passwd::run(cmd),
        Tool::Cluster(cmd) => cluster::run(*cmd),
        Tool::Assets(cmd) => assets::run(cmd),
    }
}

/// The version line `-V` prints.
pub fn version_line() -> String {
    format!(
        "ferrocache {} (memcached {})",
        env!("CARGO_PKG_VERSION"),
        config::PROTOCOL_VERSION
    )
}

/// Help and errors as clap renders them: help exits 0, a usage error `code`.
fn clap_exit(e: clap::Error, code: u8) -> Invocation {
    Invocation::Exit {
        code: if e.use_stderr() { code } else { 0 },
        text: e.to_string(),
    }
}

/// The exit code of a usage error: `ring`'s is 2, everyone else's `EX_USAGE`.
fn usage_code(argv: &[String]) -> u8 {
    let lenient = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(argv);
    match lenient.as_ref().ok().and_then(|m| m.subcommand_name()) {
        Some("ring") => ring::ERROR_CODE,
        _ => EX_USAGE as u8,
    }
}

/// Reads a password: from the terminal (twice, without echo) or as the first line of standard
/// input.
pub fn read_password() -> Result<String, String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let read_line = || -> Result<String, String> {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    };
    if !stdin.is_terminal() {
        return read_line();
    }
    let saved = tcgetattr(&stdin).map_err(|e| e.to_string())?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    let ask = |prompt: &str| -> Result<String, String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| e.to_string())?;
        let r = read_line();
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        r
    };
    let first = ask("Password: ")?;
    let second = ask("Again: ")?;
    if first != second {
        return Err("passwords do not match".into());
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        std::iter::once("ferrocache")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn clap_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn daemon_options_and_subcommands() {
        assert!(
            matches!(parse(argv(&["-p", "0", "-m", "32"])), Invocation::Daemon(c) if c.port == 0)
        );
        assert!(matches!(parse(argv(&["-V"])), Invocation::Version));
        assert!(matches!(
            parse(argv(&["ring", "--nodes", "a"])),
            Invocation::Tool(Tool::Ring(_))
        ));
        assert!(matches!(
            parse(argv(&["passwd", "u"])),
            Invocation::Tool(Tool::Passwd(_))
        ));
        for help in [
            &["help"][..],
            &["help", "ring"],
            &["ring", "--help"],
            &["-h"],
        ] {
            assert!(
                matches!(parse(argv(help)), Invocation::Exit { code: 0, .. }),
                "{help:?}"
            );
        }
        assert!(matches!(
            parse(argv(&["-p", "1", "ring"])),
            Invocation::Exit { code: 64, .. }
        ));
        assert!(matches!(
            parse(argv(&["stray"])),
            Invocation::Exit { code: 64, .. }
        ));
        assert!(matches!(
            parse(argv(&["ring", "--bogus"])),
            Invocation::Exit { code: 2, .. }
        ));
        assert!(matches!(
            parse(argv(&["passwd"])),
            Invocation::Exit { code: 64, .. }
        ));
    }

    #[test]
    fn cluster_supervise_and_status() {
        let ok = parse(argv(&[
            "cluster",
            "supervise",
            "--member",
            "cache-a|10.0.0.1|11211@10.1.0.1:11311",
            "--member",
            "cache-b:11211@[::1]:11311",
            "--standby",
            "cache-c|10.0.0.3|11211@10.1.0.3:11311",
            "--grace",
            "0.5",
        ]));
        let Invocation::Tool(Tool::Cluster(c)) = ok else {
            panic!("{ok:?}")
        };
        let cluster::ClusterSub::Supervise {
            members,
            standbys,
            grace,
            interval,
            ..
        } = c.cmd
        else {
            panic!("not supervise")
        };
        assert_eq!(members[1].0.to_string(), "cache-b||11211");
        assert_eq!(members[1].1, "[::1]:11311");
        assert_eq!(standbys.len(), 1);
        assert_eq!(grace, std::time::Duration::from_millis(500));
        assert_eq!(interval, std::time::Duration::from_secs(1));
        for bad in [
            &["cluster", "supervise", "--member", "cache-a|10.0.0.1|11211"][..],
            &["cluster", "supervise", "--member", "bad host@x:1"],
            &["cluster", "supervise", "--member", "a@b:1", "--grace", "0"],
            &["cluster", "supervise"],
            &["cluster", "status"],
        ] {
            assert!(
                matches!(parse(argv(bad)), Invocation::Exit { code: 64, .. }),
                "{bad:?}"
            );
        }
    }
}
