//! Owns: the process entry point — resolving the command line (see `cli`), starting the
//! daemon's logging (see `server::logging`), and the process's exit code. Nothing else.

use std::process::ExitCode;

use ferrocache::cli::{self, Invocation};

fn main() -> ExitCode {
    match cli::parse(std::env::args().collect()) {
        Invocation::Daemon(cfg) => {
            ferrocache::server::logging::init(cfg.verbose);
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
