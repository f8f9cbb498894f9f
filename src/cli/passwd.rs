//! Owns: the `ferrocache passwd USER` subcommand — its options, reading the password, printing
//! the hashed credentials-file entry.
//! Does not: hash (see `auth::make_entry`).

use crate::auth::{make_entry, Algorithm};

/// Print a hashed credentials-file line for USER. The password is read from the terminal
/// (twice, without echo) or as the first line of standard input.
#[derive(clap::Args, Debug, Clone)]
pub struct PasswdCmd {
    /// User name.
    pub user: String,
    /// Password-hashing algorithm.
    #[arg(long, value_enum, default_value = "argon2id")]
    pub algorithm: Algorithm,
}

/// Runs the subcommand; returns the exit code.
pub fn run(cmd: PasswdCmd) -> u8 {
    let password = match super::read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ferrocache passwd: {e}");
            return 1;
        }
    };
    match make_entry(&cmd.user, password.as_bytes(), cmd.algorithm) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("ferrocache passwd: {e}");
            1
        }
    }
}
