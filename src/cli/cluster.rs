//! Owns: the `ferrocache cluster` subcommands' options (`push`, `supervise`, `status`), the
//! login's password, and their reports and exit codes.
//! Does not: talk to the nodes (see `server::push`, `server::supervise`) or decide replacements
//! (see `cluster::supervise`).

use std::time::Duration;

use crate::cluster::supervise::{Known, Policy, Supervisor};
use crate::cluster::ClusterNode;
use crate::server::push::{cluster_stats, fetch_config, push_command, Access, Login};
use crate::tls::{ClientSettings, ClientTls};

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
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Replace a member unreachable for the grace period by a healthy standby, and push the new
    /// list (version + 1, conditional on the version seen) to every reachable node. Runs until
    /// stopped; every decision is printed with its reason.
    Supervise {
        /// A member: ENTRY@ADMIN, its discovery entry (host|ip|port or host:port, as served) and
        /// its admin endpoint HOST:PORT. Repeatable.
        #[arg(long = "member", required = true, value_parser = parse_known)]
        members: Vec<(ClusterNode, String)>,
        /// A standby node, ENTRY@ADMIN as for --member. Repeatable.
        #[arg(long = "standby", value_parser = parse_known)]
        standbys: Vec<(ClusterNode, String)>,
        /// Seconds between probe rounds.
        #[arg(long, default_value = "1", value_parser = parse_secs)]
        interval: Duration,
        /// Seconds a member must stay unreachable before it is replaced.
        #[arg(long, default_value = "30", value_parser = parse_secs)]
        grace: Duration,
        /// Consecutive failed probes needed as well (and answered ones for a healthy standby).
        #[arg(long, default_value_t = 3)]
        grace_probes: u32,
        /// At most one replacement per this many seconds.
        #[arg(long, default_value = "60", value_parser = parse_secs)]
        replace_interval: Duration,
        /// Never fewer members than this (default: the number of --member).
        #[arg(long)]
        min_members: Option<usize>,
        /// Seconds a probe may take.
        #[arg(long, default_value = "1", value_parser = parse_secs)]
        probe_timeout: Duration,
        /// Stop after this many rounds (default: run until stopped).
        #[arg(long)]
        rounds: Option<u64>,
        /// Log in as for `push` (nodes started with -Y).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Show what each node serves: version, members, and the supervisor's actions it recorded.
    Status {
        /// Admin endpoints HOST:PORT (or ENTRY@ADMIN, to be told member or standby).
        #[arg(required = true)]
        endpoints: Vec<String>,
        /// Log in as for `push` (nodes started with -Y).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
    },
}

/// `--tls` and its files: how the tools reach admin endpoints of nodes started with `-Z`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Speak TLS to the admin endpoints (nodes started with -Z); needs --tls-ca.
    #[arg(long, requires = "tls_ca")]
    pub tls: bool,
    /// The CA certificate (PEM) the nodes' certificates must chain to.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for nodes that verify clients (-o ssl_verify_mode).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM; default: read from the --tls-cert file).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The name the nodes' certificates must carry (default: the host of each endpoint).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_server_name: Option<String>,
}

impl TlsArgs {
    /// The client TLS configuration, when `--tls` is given.
    pub fn client(&self) -> Result<Option<ClientTls>, String> {
        let Some(ca) = self.tls_ca.clone().filter(|_| self.tls) else {
            return Ok(None);
        };
        ClientTls::new(&ClientSettings {
            ca,
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
        })
        .map(Some)
    }
}

/// `ENTRY@ADMIN`: a discovery entry and its admin endpoint.
fn parse_known(s: &str) -> Result<(ClusterNode, String), String> {
    let (entry, admin) = s.rsplit_once('@').ok_or_else(|| {
        format!("expected ENTRY@ADMIN, e.g. cache-a|10.0.0.11|11211@10.1.0.11:11311, not '{s}'")
    })?;
    let node = ClusterNode::parse_entry(entry).map_err(|e| e.detail())?;
    if admin.is_empty() {
        return Err("empty admin endpoint".into());
    }
    Ok((node, admin.to_string()))
}

/// Seconds, fractions allowed (`0.2`), more than 0.
fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("'{s}' is not a number of seconds above 0")),
    }
}

/// How to reach the nodes: the login for `--user USER` (the password from
/// `$FERROCACHE_PASSWORD`, else standard input) and `--tls`.
fn access(user: Option<String>, tls: &TlsArgs, what: &str) -> Result<Access, u8> {
    let fail = |e: String| {
        eprintln!("ferrocache cluster {what}: {e}");
        1
    };
    let tls = tls.client().map_err(fail)?;
    let Some(user) = user else {
        return Ok(Access { login: None, tls });
    };
    let password = match std::env::var("FERROCACHE_PASSWORD") {
        Ok(p) => p,
        Err(_) => super::read_password().map_err(|e| fail(e.to_string()))?,
    };
    Ok(Access {
        login: Some(Login { user, password }),
        tls,
    })
}

/// Runs the subcommand; returns the exit code (1 when any endpoint failed).
pub fn run(cmd: ClusterCmd) -> u8 {
    match cmd.cmd {
        ClusterSub::Push {
            nodes,
            version,
            endpoints,
            user,
            tls,
        } => {
            let access = match access(user, &tls, "push") {
                Ok(a) => a,
                Err(code) => return code,
            };
            let (report, ok) = push_command(&nodes, version, &endpoints, &access);
            print!("{report}");
            u8::from(!ok)
        }
        ClusterSub::Supervise {
            members,
            standbys,
            interval,
            grace,
            grace_probes,
            replace_interval,
            min_members,
            probe_timeout,
            rounds,
            user,
            tls,
        } => {
            let access = match access(user, &tls, "supervise") {
                Ok(a) => a,
                Err(code) => return code,
            };
            let policy = Policy {
                grace,
                grace_probes: grace_probes.max(1),
                replace_interval,
                min_members: min_members.unwrap_or(members.len()),
            };
            let known = members
                .into_iter()
                .map(|m| (m, false))
                .chain(standbys.into_iter().map(|s| (s, true)))
                .map(|((entry, admin), standby)| Known {
                    entry,
                    admin,
                    standby,
                })
                .collect();
            let l = crate::server::supervise::Loop {
                interval,
                probe_timeout,
                access,
                rounds,
            };
            crate::server::supervise::run(Supervisor::new(policy, known), &l);
            0
        }
        ClusterSub::Status {
            endpoints,
            user,
            tls,
        } => {
            let access = match access(user, &tls, "status") {
                Ok(a) => a,
                Err(code) => return code,
            };
            let (report, ok) = status(&endpoints, &access);
            print!("{report}");
            u8::from(!ok)
        }
    }
}

/// `cluster status`: per endpoint, what it serves and what the supervisor told it; then whether
/// every reachable node serves the same list. Fails when one is unreachable or they differ.
fn status(endpoints: &[String], access: &Access) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let mut served = Vec::new();
    let given: Vec<Option<ClusterNode>> = endpoints
        .iter()
        .map(|e| parse_known(e).ok().map(|k| k.0))
        .collect();
    for ep in endpoints {
        let admin = parse_known(ep).map_or(ep.clone(), |k| k.1);
        let config = match fetch_config(&admin, access) {
            Ok(c) => c,
            Err(e) => {
                ok = false;
                out.push_str(&format!("{admin}: unreachable: {e}\n"));
                continue;
            }
        };
        let Some(c) = config else {
            out.push_str(&format!("{admin}: reachable, no config served\n"));
            continue;
        };
        let members: Vec<String> = c.nodes().iter().map(|n| n.to_string()).collect();
        out.push_str(&format!(
            "{admin}: reachable, version {}, {} member(s): {}\n",
            c.version(),
            members.len(),
            members.join(" ")
        ));
        let standbys: Vec<String> = given
            .iter()
            .flatten()
            .filter(|g| !members.contains(&g.to_string()))
            .map(|g| g.to_string())
            .collect();
        if given.iter().any(Option::is_some) {
            out.push_str(&format!(
                "  standbys (given, not in its list): {}\n",
                standbys.join(" ")
            ));
        }
        if let Ok(stats) = cluster_stats(&admin, access) {
            for (k, v) in stats {
                if k.starts_with("cluster_supervisor_") || k.starts_with("cluster_peer:") {
                    out.push_str(&format!("  {k} {v}\n"));
                }
            }
        }
        served.push(c);
    }
    match served.first() {
        Some(first) if served.iter().all(|c| c == first) => out.push_str(&format!(
            "consistent: {} reachable node(s) serve version {}\n",
            served.len(),
            first.version()
        )),
        Some(_) => {
            ok = false;
            let mut v: Vec<u64> = served.iter().map(|c| c.version()).collect();
            v.dedup();
            out.push_str(&format!("DIFFERENT lists served (versions {v:?})\n"));
        }
        None => ok = false,
    }
    (out, ok)
}
