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
