//! Owns: what a reload (SIGHUP, `systemctl reload`) changes — re-reading the command line and
//! `--config-file` (through `config`) and applying the settings that can change live (verbosity
//! and the log level, `-m`, `-c`, `-o idle_timeout`), naming those that need a restart, then
//! re-reading the credentials and cluster files and the TLS certificates (as `refresh_certs`:
//! for new connections). A configuration that does not load changes nothing, and says why; a file
//! that does not load keeps the one in force.
//! Does not: parse options (see `config`) or answer signals (see `signals`).

use log::{error, info, warn};

use crate::config::Config;
use crate::state::Shared;

/// Reloads; returns what it did in one line (for systemd's status).
pub fn reload(sh: &Shared) -> String {
    let new = match Config::from_args(std::env::args()) {
        Ok(c) => c,
        Err(e) => {
            let why = e.msg.trim().replace('\n', " ");
            error!("reload: configuration not loaded, nothing changed: {why}");
            return format!("configuration not loaded, nothing changed: {why}");
        }
    };
    let mut done = apply_live(sh, &new);
    let restart = needs_restart(sh.config(), &new);
    if !restart.is_empty() {
        let names = restart.join(" ");
        warn!("reload: {names} changed: kept until the next restart");
        done.push(format!("{names} need a restart"));
    }
    reload_files(sh, &mut done);
    if done.is_empty() {
        info!("reload: nothing changed");
        done.push("nothing changed".to_string());
    }
    done.join(", ")
}

/// Applies the live settings of `new`; returns the changes made.
fn apply_live(sh: &Shared, new: &Config) -> Vec<String> {
    let mut done = Vec::new();
    let rt = sh.settings();
    let verbosity = u32::from(new.verbose).min(2);
    if rt.verbosity() != verbosity {
        rt.set_verbosity(verbosity);
        done.push(format!("verbosity {verbosity}"));
    }
    super::logging::set_verbosity(new.verbose);
    if sh.store().memory_limit() != new.memory_limit {
        sh.store().set_memory_limit(new.memory_limit);
        done.push(format!("memory limit {} MB", new.memory_limit >> 20));
    }
    if rt.max_conns() != new.maxconns {
        super::process::raise_open_files(new.maxconns);
        rt.set_max_conns(new.maxconns);
        done.push(format!("connection limit {}", new.maxconns));
    }
    if rt.idle_timeout() != new.ext.idle_timeout {
        rt.set_idle_timeout(new.ext.idle_timeout);
        done.push(format!("idle timeout {} s", new.ext.idle_timeout));
    }
    for d in &done {
        info!("reload: {d}");
    }
    done
}

/// The options that differ between the running configuration and `new` and only take effect at
/// start-up.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! compare {
        ($($name:literal => $($field:ident).+),* $(,)?) => {
            $(
                if format!("{:?}", old.$($field).+) != format!("{:?}", new.$($field).+) {
                    out.push($name);
                }
            )*
        };
    }
    compare!(
        "-p" => port, "-U" => udp_port, "-s" => unix_socket, "-a" => unix_mask, "-l" => listen,
        "-d" => daemon, "-r" => coredumps, "-u" => user, "-M" => evictions, "-L" => large_pages,
        "-k" => lock_memory, "-P" => pidfile, "-e" => memory_file, "-f" => growth_factor, "-n" => min_size,
        "-t" => threads, "-R" => reqs_per_event, "-C" => cas_enabled, "-b" => backlog,
        "-B" => protocol, "-I" => item_size_max, "-S" => sasl, "-F" => flush_enabled,
        "-X" => dump_enabled, "-W" => watch_enabled, "-A" => shutdown_enabled,
        "-D" => prefix_delimiter, "-Y" => auth_file, "--sasl-pwdb" => credentials_file,
        "SASL_CONF_PATH" => sasl_conf,
        "--cluster-nodes" => cluster.nodes, "--cluster-file" => cluster.file,
        "--state-dir" => cluster.state_dir, "--cluster-health-check" => cluster.health_check,
        "--admin-listen" => cluster.admin_listen, "--metrics-listen" => metrics_listen,
    );
    // Every `-o` setting but the live idle timeout.
    let mut ext = new.ext.clone();
    ext.idle_timeout = old.ext.idle_timeout;
    if format!("{ext:?}") != format!("{:?}", old.ext) {
        out.push("-o");
    }
    out
}

/// Re-reads the cluster file, the credentials file and the TLS certificates; one that does not
/// load leaves the old one in force.
fn reload_files(sh: &Shared, done: &mut Vec<String>) {
    if let Some(tls) = sh.tls() {
        match tls.refresh(sh.clock().now()) {
            Ok(()) => {
                info!("reload: TLS certificates reloaded for new connections");
                done.push("TLS certificates".to_string());
            }
            Err(e) => {
                error!("reload: keeping the TLS certificates in use: {e}");
                done.push("TLS certificates not loaded".to_string());
            }
        }
    }
    if sh.cluster().enabled() {
        match sh.cluster().reload() {
            Ok(v) => {
                info!("reload: cluster config version {v:?}");
                done.push(format!("cluster config version {v:?}"));
            }
            Err(e) => {
                error!("reload: keeping the previous cluster config: {e}");
                done.push("cluster file not loaded".to_string());
            }
        }
    }
    if sh.config().credentials_file.is_some() || sh.config().sasl_conf.is_some() {
        match sh.reload_credentials() {
            Ok(n) => {
                info!("reload: reloaded {n} credential(s)");
                done.push(format!("{n} credential(s)"));
            }
            Err(e) => {
                error!("reload: keeping the previous credentials: {e}");
                done.push("credentials not loaded".to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        let mut argv = vec!["ferrocache"];
        argv.extend_from_slice(args);
        Config::from_args(argv).unwrap()
    }

    #[test]
    fn live_settings_need_no_restart() {
        let old = cfg(&["-t", "2"]);
        let new = cfg(&[
            "-t",
            "2",
            "-c",
            "10",
            "-m",
            "128",
            "-vv",
            "-o",
            "idle_timeout=5",
        ]);
        assert_eq!(needs_restart(&old, &new), Vec::<&str>::new());
    }

    #[test]
    fn ports_threads_and_other_settings_need_a_restart() {
        let old = cfg(&["-t", "2"]);
        let new = cfg(&[
            "-t",
            "3",
            "-p",
            "11299",
            "-o",
            "hot_lru_pct=30",
            "-o",
            "idle_timeout=5",
        ]);
        assert_eq!(needs_restart(&old, &new), ["-p", "-t", "-o"]);
    }
}
