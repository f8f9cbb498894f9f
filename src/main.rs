//! Owns: the process entry point — resolving the command line (see `cli`), logging set-up for
//! the daemon, and the process's exit code. Nothing else.

use std::process::ExitCode;

use ferrocache::cli::{self, Invocation};

fn main() -> ExitCode {
    match cli::parse(std::env::args().collect()) {
        Invocation::Daemon(cfg) => {
            init_logging(cfg.verbose);
            match ferrocache::server::run(*cfg) {
                Ok(code) => ExitCode::from(code as u8),
                Err(e) => {
                    eprintln!("{}", e.msg);
                    ExitCode::from(e.code as u8)
                }
            }
        }
        Invocation::Version => {
            println!("{}", cli::version_line());
            ExitCode::SUCCESS
        }
        Invocation::Tool(tool) => ExitCode::from(cli::run_tool(tool)),
        Invocation::Exit { text, code } => {
            if code == 0 {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
            ExitCode::from(code)
        }
    }
}

/// `-v` info, `-vv` debug, `-vvv` trace; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
}
