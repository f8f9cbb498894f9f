//! Owns: the process entry point — subcommands, logging set-up, and mapping start-up errors to
//! exit codes. Nothing else.

use std::process::ExitCode;

use ferrocache::config::Config;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("ring") {
        return match ferrocache::cluster::ring::ring_command(&argv[2..]) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    if argv.get(1).map(String::as_str) == Some("cluster") {
        return cluster(&argv[1..]);
    }
    if argv.get(1).map(String::as_str) == Some("passwd") {
        return passwd(&argv[1..]);
    }
    let cfg = match Config::from_args(argv) {
        Ok(c) => c,
        Err(e) => {
            if e.code == 0 {
                print!("{}", e.msg);
                return ExitCode::SUCCESS;
            }
            eprintln!("{}", e.msg);
            return ExitCode::from(e.code as u8);
        }
    };
    if std::env::args().any(|a| a == "-V" || a == "--version") {
        println!(
            "ferrocache {} (memcached {})",
            env!("CARGO_PKG_VERSION"),
            ferrocache::config::PROTOCOL_VERSION
        );
        return ExitCode::SUCCESS;
    }
    let level = match cfg.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
    match ferrocache::server::run(cfg) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("{}", e.msg);
            ExitCode::from(e.code as u8)
        }
    }
}

/// `ferrocache passwd USER`: prints a hashed credentials-file entry for USER. The password is read
/// from the terminal (twice, without echo) or as the first line of standard input.
fn passwd(args: &[String]) -> ExitCode {
    use clap::Parser;
    use ferrocache::auth::{make_entry, Algorithm};

    #[derive(Parser)]
    #[command(
        name = "ferrocache passwd",
        about = "Print a hashed credentials-file line for USER"
    )]
    struct Args {
        /// User name.
        user: String,
        /// Password-hashing algorithm.
        #[arg(long, value_enum, default_value = "argon2id")]
        algorithm: Algorithm,
    }
    let a = match parse_subcommand::<Args>(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferrocache passwd: {e}");
            return ExitCode::from(1);
        }
    };
    match make_entry(&a.user, password.as_bytes(), a.algorithm) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrocache passwd: {e}");
            ExitCode::from(1)
        }
    }
}

fn read_password() -> Result<String, String> {
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

/// `ferrocache cluster push --nodes LIST [--version N] ENDPOINT...`: pushes one Auto Discovery
/// config to every node's admin endpoint.
fn cluster(args: &[String]) -> ExitCode {
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    #[command(
        name = "ferrocache cluster",
        about = "Manage Auto Discovery membership"
    )]
    struct Args {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(Subcommand)]
    enum Cmd {
        /// Push a node list to every node (their admin endpoints, HOST:PORT).
        Push {
            /// Members: host|ip|port or host:port entries, comma or space separated.
            #[arg(long, required = true)]
            nodes: Vec<String>,
            /// Config version (default: one past the newest any endpoint serves).
            #[arg(long)]
            version: Option<u64>,
            /// Admin endpoints to push to.
            #[arg(required = true)]
            endpoints: Vec<String>,
            /// Log in with memcached's ASCII auth first (nodes started with -Y); the password is
            /// read from $FERROCACHE_PASSWORD, else from the first line of standard input.
            #[arg(long)]
            user: Option<String>,
        },
    }
    let a = match parse_subcommand::<Args>(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match a.cmd {
        Cmd::Push {
            nodes,
            version,
            endpoints,
            user,
        } => {
            let login = match user {
                None => None,
                Some(user) => {
                    let password = match std::env::var("FERROCACHE_PASSWORD") {
                        Ok(p) => p,
                        Err(_) => match read_password() {
                            Ok(p) => p,
                            Err(e) => {
                                eprintln!("ferrocache cluster push: {e}");
                                return ExitCode::from(1);
                            }
                        },
                    };
                    Some(ferrocache::server::push::Login { user, password })
                }
            };
            let (report, ok) =
                ferrocache::server::push::push_command(&nodes, version, &endpoints, login.as_ref());
            print!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Parses a subcommand's arguments; on an error (or `--help`) prints clap's message and gives the
/// exit code: 64 (usage) for errors, 0 for help.
fn parse_subcommand<T: clap::Parser>(args: &[String]) -> Result<T, ExitCode> {
    T::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        ExitCode::from(if e.use_stderr() { 64 } else { 0 })
    })
}
