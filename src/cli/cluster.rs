//! Owns: the `ferrocache cluster` subcommands' options (`push`), the push login's password, and
//! the report and exit code.
//! Does not: talk to the nodes (see `server::push`).

use crate::server::push::{push_command, Login};

/// Manage Auto Discovery membership.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterCmd {
    #[command(subcommand)]
    pub cmd: ClusterSub,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum ClusterSub {
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

/// Runs the subcommand; returns the exit code (1 when any endpoint failed).
pub fn run(cmd: ClusterCmd) -> u8 {
    let ClusterSub::Push {
        nodes,
        version,
        endpoints,
        user,
    } = cmd.cmd;
    let login = match user {
        None => None,
        Some(user) => {
            let password = match std::env::var("FERROCACHE_PASSWORD") {
                Ok(p) => p,
                Err(_) => match super::read_password() {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("ferrocache cluster push: {e}");
                        return 1;
                    }
                },
            };
            Some(Login { user, password })
        }
    };
    let (report, ok) = push_command(&nodes, version, &endpoints, login.as_ref());
    print!("{report}");
    if ok {
        0
    } else {
        1
    }
}
