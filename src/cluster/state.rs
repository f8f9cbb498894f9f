//! Owns: the cluster config served at run time — building it at start-up from the state file and
//! the configured membership (flags or cluster file), admin pushes, and SIGHUP reloads, each
//! persisted to the state file before it is served so the version never goes backwards.
//! Does not: speak any protocol or decide who may push (the executor checks the connection).
//!
//! Sources: the configured membership is applied at start-up and on SIGHUP only when it differs
//! from the list applied last time (remembered in the state directory), so a config pushed since
//! is not undone by restarting with an unchanged file or flags.
//!
//! Versions: an explicit `version N` (file, flags or push) is used as given and must be newer. A
//! membership change without one gets the previous version + 1, starting at 1, so every node fed
//! the same membership serves the same version. Only a state directory makes that history (and
//! so the version) survive a restart; without one, give `version N` in the cluster file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::{load_state, store_state, ClusterConfig, ClusterError, NodeList, STATE_FILE_NAME};

/// Auto Discovery settings.
#[derive(Clone, Debug, Default)]
pub struct ClusterSettings {
    /// Members given on the command line (already parsed).
    pub nodes: Option<NodeList>,
    pub file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub admin_listen: Option<std::net::SocketAddr>,
    /// `--admin-listen notls:…`: plaintext even with `-Z`.
    pub admin_notls: bool,
    /// Interval of the opt-in peer health check.
    pub health_check: Option<std::time::Duration>,
}

impl ClusterSettings {
    /// Discovery is served (`config get cluster`, the legacy key, binary 0x60) when any source of
    /// membership is configured.
    pub fn enabled(&self) -> bool {
        self.nodes.is_some() || self.file.is_some() || self.admin_listen.is_some()
    }
}

/// Consecutive probe results needed to change a peer's reported state (hysteresis).
pub const HEALTH_STREAK: u32 = 3;

/// What the opt-in health check reports for one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Fewer than [`HEALTH_STREAK`] probes so far (the grace period).
    Unknown,
    Up,
    Down,
}

/// Probe history of one member.
#[derive(Clone, Copy, Debug)]
struct PeerHealth {
    state: PeerState,
    /// Consecutive results disagreeing with `state` (or agreeing, while `Unknown`).
    streak: u32,
    last: bool,
    changes: u64,
}

/// Why a push or reload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{}", .0.detail())]
    Rejected(ClusterError),
    #[error("cannot persist the cluster state: {0}")]
    Persist(std::io::Error),
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
}

/// The served config and where it comes from.
#[derive(Debug, Default)]
pub struct ClusterState {
    enabled: bool,
    current: RwLock<Option<Arc<ClusterConfig>>>,
    /// Serializes pushes and reloads (version check, persist, swap).
    update: Mutex<()>,
    state_file: Option<PathBuf>,
    flags: Option<NodeList>,
    file: Option<PathBuf>,
    /// The configured list applied last (its `to_text`), to tell an edited source from an old one.
    applied: Mutex<Option<String>>,
    /// Pushes accepted / refused, reloads that failed (for `stats cluster`).
    pushes: AtomicU64,
    push_errors: AtomicU64,
    reload_errors: AtomicU64,
    /// Opt-in peer reachability, by `host:port`; never feeds back into the served list.
    health: Mutex<std::collections::BTreeMap<String, PeerHealth>>,
    health_checks: AtomicU64,
    /// Supervisor decisions reported here (`config set cluster_event`): all, and the
    /// replacements or removals among them; the last reason.
    events: AtomicU64,
    replacements: AtomicU64,
    last_event: Mutex<String>,
}

/// File beside the state file remembering the last applied configured list.
const SOURCE_FILE_NAME: &str = "cluster.source";

impl ClusterState {
    /// Discovery disabled.
    pub fn disabled() -> ClusterState {
        ClusterState::default()
    }

    /// Builds the start-up state: the state file's config, then the configured membership on top.
    pub fn start(s: &ClusterSettings) -> Result<ClusterState, String> {
        let state_file = s.state_dir.as_ref().map(|d| d.join(STATE_FILE_NAME));
        if let Some(d) = &s.state_dir {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create state directory {}: {e}", d.display()))?;
        }
        let st = ClusterState {
            enabled: s.enabled(),
            current: RwLock::new(None),
            update: Mutex::new(()),
            state_file,
            flags: s.nodes.clone(),
            file: s.file.clone(),
            applied: Mutex::new(None),
            pushes: AtomicU64::new(0),
            push_errors: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
            health: Mutex::new(std::collections::BTreeMap::new()),
            health_checks: AtomicU64::new(0),
            events: AtomicU64::new(0),
            replacements: AtomicU64::new(0),
            last_event: Mutex::new(String::new()),
        };
        if let Some(p) = &st.state_file {
            let saved = load_state(p).map_err(|e| format!("{}: {e}", p.display()))?;
            if saved.is_some() {
                *st.applied.lock() = std::fs::read_to_string(st.source_file_path(p)).ok();
            }
            *st.current.write() = saved.map(Arc::new);
        }
        if st.enabled {
            if st.state_file.is_none() {
                log::warn!(
                    "cluster: no --state-dir: the config version starts again at 1 (or the file's `version N`) on restart"
                );
            }
            match st.reload() {
                Ok(_) => {}
                // A configured list older than what was pushed since: keep serving the newer one.
                Err(UpdateError::Rejected(e @ ClusterError::VersionNotNewer { .. })) => {
                    log::warn!("cluster: {}; serving the saved config", e.detail())
                }
                Err(e) => return Err(format!("cluster: {e}")),
            }
        }
        Ok(st)
    }

    /// Whether discovery commands are answered at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The config served now (None until a first one is configured or pushed).
    pub fn current(&self) -> Option<Arc<ClusterConfig>> {
        self.current.read().clone()
    }

    fn source_file_path(&self, state_file: &Path) -> PathBuf {
        state_file.with_file_name(SOURCE_FILE_NAME)
    }

    fn persist_and_serve(&self, new: ClusterConfig) -> Result<Arc<ClusterConfig>, UpdateError> {
        if let Some(p) = &self.state_file {
            store_state(p, &new).map_err(UpdateError::Persist)?;
        }
        let new = Arc::new(new);
        *self.current.write() = Some(new.clone());
        Ok(new)
    }

    /// `config set cluster`: accepted only with a newer version, and with `replaces` only while
    /// that version is the one served (checked and swapped under the update lock).
    pub fn push(
        &self,
        payload: &[u8],
        replaces: Option<u64>,
    ) -> Result<Arc<ClusterConfig>, UpdateError> {
        let r = self.push_inner(payload, replaces);
        let counter = if r.is_ok() {
            &self.pushes
        } else {
            &self.push_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
        r
    }

    fn push_inner(
        &self,
        payload: &[u8],
        replaces: Option<u64>,
    ) -> Result<Arc<ClusterConfig>, UpdateError> {
        let _g = self.update.lock();
        let cur = self.current();
        let new = ClusterConfig::apply_push(cur.as_deref(), payload, replaces)
            .map_err(UpdateError::Rejected)?;
        log::info!(
            "cluster: version {} with {} node(s) pushed",
            new.version(),
            new.nodes().len()
        );
        self.persist_and_serve(new)
    }

    /// Records a supervisor decision that changed this node's list (its reason, as sent): counted
    /// in `stats cluster`, the last one kept (printable ASCII only, at most
    /// [`super::MAX_EVENT_LEN`] bytes).
    pub fn record_event(&self, reason: &[u8]) {
        let text: String = reason
            .iter()
            .take(super::MAX_EVENT_LEN)
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '?'
                }
            })
            .collect();
        log::warn!("cluster: supervisor: {text}");
        self.events.fetch_add(1, Ordering::Relaxed);
        if text.starts_with("replace ") || text.starts_with("remove ") {
            self.replacements.fetch_add(1, Ordering::Relaxed);
        }
        *self.last_event.lock() = text;
    }

    /// Re-reads the configured membership (the cluster file, or the flags at start-up). Returns
    /// the version served afterwards, if any.
    pub fn reload(&self) -> Result<Option<u64>, UpdateError> {
        let r = self.reload_inner();
        if r.is_err() {
            self.reload_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Records one probe of member `peer` (`host:port`). The reported state changes only after
    /// [`HEALTH_STREAK`] consecutive results say so, so one lost probe never flips it.
    pub fn record_probe(&self, peer: &str, ok: bool) {
        self.health_checks.fetch_add(1, Ordering::Relaxed);
        let mut h = self.health.lock();
        let e = h.entry(peer.to_string()).or_insert(PeerHealth {
            state: PeerState::Unknown,
            streak: 0,
            last: ok,
            changes: 0,
        });
        let agrees = match e.state {
            PeerState::Unknown => ok == e.last,
            PeerState::Up => ok,
            PeerState::Down => !ok,
        };
        e.streak = match (e.state, agrees) {
            (PeerState::Unknown, true) => e.streak + 1,
            (PeerState::Unknown, false) => 1,
            (_, true) => 0,
            (_, false) => e.streak + 1,
        };
        e.last = ok;
        if e.streak >= HEALTH_STREAK {
            let new = if ok { PeerState::Up } else { PeerState::Down };
            if new != e.state {
                if e.state != PeerState::Unknown {
                    log::warn!("cluster: peer {peer} is now {new:?}");
                }
                e.state = new;
                e.changes += 1;
            }
            e.streak = 0;
        }
    }

    /// Forgets peers that are no longer members.
    pub fn retain_peers(&self, members: &[String]) {
        self.health.lock().retain(|k, _| members.contains(k));
    }

    /// The reported state of one member (tests, stats).
    pub fn peer_state(&self, peer: &str) -> Option<PeerState> {
        self.health.lock().get(peer).map(|h| h.state)
    }

    /// `stats cluster`: (name, value) pairs.
    pub fn stats(&self) -> Vec<(&'static str, String)> {
        let cur = self.current();
        let source = match (&self.file, &self.flags) {
            (Some(f), _) => format!("file:{}", f.display()),
            (None, Some(_)) => "flags".to_string(),
            (None, None) => "push".to_string(),
        };
        vec![
            (
                "cluster_version",
                cur.as_ref().map_or(0, |c| c.version()).to_string(),
            ),
            (
                "cluster_nodes",
                cur.as_ref().map_or(0, |c| c.nodes().len()).to_string(),
            ),
            ("cluster_source", source),
            (
                "cluster_state_file",
                self.state_file
                    .as_ref()
                    .map_or("none".to_string(), |p| p.display().to_string()),
            ),
            (
                "cluster_pushes",
                self.pushes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "cluster_push_errors",
                self.push_errors.load(Ordering::Relaxed).to_string(),
            ),
            (
                "cluster_reload_errors",
                self.reload_errors.load(Ordering::Relaxed).to_string(),
            ),
            (
                "cluster_supervisor_events",
                self.events.load(Ordering::Relaxed).to_string(),
            ),
            (
                "cluster_supervisor_replacements",
                self.replacements.load(Ordering::Relaxed).to_string(),
            ),
            ("cluster_supervisor_last", {
                let last = self.last_event.lock();
                if last.is_empty() {
                    "none".to_string()
                } else {
                    last.clone()
                }
            }),
        ]
    }

    /// `stats cluster` lines for the health check: `cluster_health_checks` and one
    /// `cluster_peer:<host>:<port>` per member (`unknown`, `up` or `down`).
    pub fn health_stats(&self) -> Vec<(String, String)> {
        let h = self.health.lock();
        if h.is_empty() && self.health_checks.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let mut v = vec![(
            "cluster_health_checks".to_string(),
            self.health_checks.load(Ordering::Relaxed).to_string(),
        )];
        for (peer, e) in h.iter() {
            let state = match e.state {
                PeerState::Unknown => "unknown",
                PeerState::Up => "up",
                PeerState::Down => "down",
            };
            v.push((format!("cluster_peer:{peer}"), state.to_string()));
        }
        v
    }

    fn reload_inner(&self) -> Result<Option<u64>, UpdateError> {
        let _g = self.update.lock();
        let list = match (&self.file, &self.flags) {
            (Some(path), _) => read_list(path)?,
            (None, Some(l)) => l.clone(),
            (None, None) => return Ok(self.current().map(|c| c.version())),
        };
        let cur = self.current();
        let source = list.to_text();
        if cur.is_some() && self.applied.lock().as_deref() == Some(source.as_str()) {
            // Unchanged since it was applied: whatever was pushed since stays.
            return Ok(cur.map(|c| c.version()));
        }
        let new = ClusterConfig::from_node_list(&list, cur.as_deref(), 0)
            .map_err(UpdateError::Rejected)?;
        let version = if cur.as_deref() == Some(&new) {
            new.version()
        } else {
            log::info!(
                "cluster: version {} with {} node(s)",
                new.version(),
                new.nodes().len()
            );
            self.persist_and_serve(new)?.version()
        };
        if let Some(p) = &self.state_file {
            crate::fsutil::write_atomically(&self.source_file_path(p), source.as_bytes())
                .map_err(UpdateError::Persist)?;
        }
        *self.applied.lock() = Some(source);
        Ok(Some(version))
    }
}

fn read_list(path: &Path) -> Result<NodeList, UpdateError> {
    let text = std::fs::read_to_string(path).map_err(|err| UpdateError::Read {
        path: path.display().to_string(),
        err,
    })?;
    NodeList::parse(&text).map_err(UpdateError::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_a_streak_to_change() {
        let st = ClusterState::disabled();
        let p = "a:1";
        st.record_probe(p, true);
        st.record_probe(p, true);
        assert_eq!(st.peer_state(p), Some(PeerState::Unknown), "grace period");
        st.record_probe(p, true);
        assert_eq!(st.peer_state(p), Some(PeerState::Up));
        // Flapping results never flip it.
        for ok in [false, true, false, false, true, false, true] {
            st.record_probe(p, ok);
            assert_eq!(st.peer_state(p), Some(PeerState::Up));
        }
        for _ in 0..HEALTH_STREAK {
            st.record_probe(p, false);
        }
        assert_eq!(st.peer_state(p), Some(PeerState::Down));
        st.retain_peers(&[]);
        assert_eq!(st.peer_state(p), None);
    }
}
