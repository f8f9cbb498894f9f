//! Owns: the supervisor's decisions (`ferrocache cluster supervise`) as a pure state machine:
//! probe results of members and standbys in, actions out (replace a dead member by a healthy
//! standby, align a node serving an old list, or hold, each with its reason). Time is passed in.
//! Does not: probe, push or sleep (see `server::supervise`), or parse the command line (`cli`).
//!
//! Rules, each a guard on every round:
//! - The served list is the newest config any reachable node serves; nodes serving different
//!   lists under the same version stop everything (an operator's job).
//! - Nothing is done unless more than half of that list's members answer (a supervisor cut off
//!   from the cluster, or on the minority side of a partition, does nothing).
//! - A member is dead after `grace_probes` consecutive failed probes spanning at least `grace`;
//!   one answered probe starts the count again (a flapping member is never replaced unless it
//!   stays unreachable for the whole grace period).
//! - At most one replacement per `replace_interval`; the list never shrinks below `min_members`
//!   (without a healthy standby the dead member is removed only above that minimum).
//! - A standby is healthy after `grace_probes` consecutive answered probes. A node this
//!   supervisor took out of the list is retired: it is never put back (an operator adds it
//!   again as a standby by restarting the supervisor with it in `--standby`).
//! - The new list has version + 1 and is pushed conditionally on the version each node was seen
//!   serving, in one fixed order (members first, sorted), stopping at the first refusal, so two
//!   supervisors racing leave one list under one version.

use std::time::{Duration, Instant};

use super::{ClusterConfig, ClusterNode};

/// The supervisor's knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long a member must stay unreachable before it is replaced.
    pub grace: Duration,
    /// Consecutive failed probes needed too (and answered ones for a standby to be healthy).
    pub grace_probes: u32,
    /// At most one replacement per this period.
    pub replace_interval: Duration,
    /// Never fewer members than this.
    pub min_members: usize,
}

/// A node the supervisor knows: its entry as served to clients and its admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub entry: ClusterNode,
    pub admin: String,
    /// Given as a standby (a candidate replacement).
    pub standby: bool,
}

/// One probe of one node's admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It answered, serving this config (None: nothing yet).
    Up(Option<ClusterConfig>),
    Down,
}

/// What the supervisor does after a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Push `config` to these nodes (admin endpoint, the version it replaces there) in this
    /// order, stopping at the first refusal; tell them `reason` afterwards.
    Push {
        config: ClusterConfig,
        to: Vec<(String, Option<u64>)>,
        reason: String,
    },
    /// Nothing to push; logged with its reason (only when it differs from the last hold).
    Hold(String),
}

#[derive(Clone, Debug, Default)]
struct History {
    failures: u32,
    down_since: Option<Instant>,
    successes: u32,
    seen: Option<Option<ClusterConfig>>,
}

/// The supervisor's memory between rounds.
#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    nodes: Vec<Known>,
    history: Vec<History>,
    /// Nodes this supervisor took out of the list (by index in `nodes`).
    retired: Vec<bool>,
    last_replacement: Option<Instant>,
    last_hold: Option<String>,
    /// Changes in reachability since the last [`Supervisor::take_notes`], for the log.
    notes: Vec<String>,
}

fn same_entry(a: &ClusterNode, b: &ClusterNode) -> bool {
    a.host == b.host && a.ip == b.ip && a.port == b.port
}

impl Supervisor {
    pub fn new(policy: Policy, nodes: Vec<Known>) -> Supervisor {
        let n = nodes.len();
        Supervisor {
            policy,
            nodes,
            history: vec![History::default(); n],
            retired: vec![false; n],
            last_replacement: None,
            last_hold: None,
            notes: Vec::new(),
        }
    }

    /// The known nodes, in the order probes are expected.
    pub fn nodes(&self) -> &[Known] {
        &self.nodes
    }

    /// Whether the supervisor took node `i` out of the list.
    pub fn retired(&self, i: usize) -> bool {
        self.retired[i]
    }

    /// What changed in reachability (a node stopped or started answering) since the last call:
    /// logged, so a flapping node shows in the log although it is never replaced.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// One round: `probes[i]` is node `i`'s result at `now`. Returns at most one action.
    pub fn round(&mut self, now: Instant, probes: Vec<Probe>) -> Option<Action> {
        for ((h, p), k) in self.history.iter_mut().zip(probes).zip(&self.nodes) {
            match p {
                Probe::Up(c) => {
                    if h.failures > 0 {
                        self.notes.push(format!(
                            "{} answers again, after {} failed probe(s)",
                            k.entry, h.failures
                        ));
                    }
                    h.failures = 0;
                    h.down_since = None;
                    h.successes = h.successes.saturating_add(1);
                    h.seen = Some(c);
                }
                Probe::Down => {
                    if h.failures == 0 {
                        self.notes.push(format!(
                            "{} does not answer at {}; replaced if it stays so for {:?} and {} probes",
                            k.entry, k.admin, self.policy.grace, self.policy.grace_probes
                        ));
                    }
                    h.successes = 0;
                    h.failures = h.failures.saturating_add(1);
                    h.down_since.get_or_insert(now);
                    h.seen = None;
                }
            }
        }
        let action = self.decide(now);
        match &action {
            Err(why) if self.last_hold.as_ref() == Some(why) => None,
            Err(why) => {
                self.last_hold = Some(why.clone());
                Some(Action::Hold(why.clone()))
            }
            Ok(None) => {
                self.last_hold = None;
                None
            }
            Ok(Some(a)) => {
                self.last_hold = None;
                Some(a.clone())
            }
        }
    }

    fn up(&self, i: usize) -> bool {
        self.history[i].failures == 0 && self.history[i].seen.is_some()
    }

    fn find(&self, entry: &ClusterNode) -> Option<usize> {
        self.nodes.iter().position(|k| same_entry(&k.entry, entry))
    }

    /// The newest config served by a reachable node; Err when two differ under one version.
    fn served(&self) -> Result<ClusterConfig, String> {
        let mut newest: Option<&ClusterConfig> = None;
        for h in &self.history {
            let Some(Some(c)) = &h.seen else { continue };
            match newest {
                Some(n) if n.version() > c.version() => {}
                Some(n) if n.version() == c.version() && n != c => {
                    return Err(format!(
                        "nodes serve different lists under version {}: an operator must push one",
                        c.version()
                    ))
                }
                _ => newest = Some(c),
            }
        }
        newest
            .cloned()
            .ok_or_else(|| "no reachable node serves a cluster config".to_string())
    }

    fn decide(&mut self, now: Instant) -> Result<Option<Action>, String> {
        let served = self.served()?;
        let members: Vec<Option<usize>> = served.nodes().iter().map(|n| self.find(n)).collect();
        let reachable = members.iter().flatten().filter(|&&i| self.up(i)).count();
        let total = members.len();
        if reachable * 2 <= total {
            return Err(format!(
                "reaches {reachable} of {total} members of version {}: no majority, doing nothing",
                served.version()
            ));
        }
        // Members dead for the whole grace period, the longest-dead first.
        let mut dead: Vec<(Instant, usize)> = members
            .iter()
            .flatten()
            .filter_map(|&i| {
                let h = &self.history[i];
                let since = h.down_since?;
                (h.failures >= self.policy.grace_probes
                    && now.saturating_duration_since(since) >= self.policy.grace)
                    .then_some((since, i))
            })
            .collect();
        dead.sort();
        if let Some(&(since, d)) = dead.first() {
            if let Some(last) = self.last_replacement {
                if now.saturating_duration_since(last) < self.policy.replace_interval {
                    return Err(format!(
                        "{} is unreachable, but the last replacement was under {:?} ago",
                        self.nodes[d].entry, self.policy.replace_interval
                    ));
                }
            }
            let why = format!(
                "unreachable for {:.1}s ({} failed probes)",
                now.saturating_duration_since(since).as_secs_f64(),
                self.history[d].failures
            );
            let standby = (0..self.nodes.len()).find(|&s| {
                self.nodes[s].standby
                    && !self.retired[s]
                    && !members.contains(&Some(s))
                    && self.up(s)
                    && self.history[s].successes >= self.policy.grace_probes
            });
            let mut nodes: Vec<ClusterNode> = served
                .nodes()
                .iter()
                .filter(|n| !same_entry(n, &self.nodes[d].entry))
                .cloned()
                .collect();
            let reason = match standby {
                Some(s) => {
                    nodes.push(self.nodes[s].entry.clone());
                    format!(
                        "replace {} by standby {} in version {}: {why}",
                        self.nodes[d].entry,
                        self.nodes[s].entry,
                        served.version() + 1
                    )
                }
                None if nodes.len() >= self.policy.min_members => format!(
                    "remove {} in version {} (no healthy standby): {why}",
                    self.nodes[d].entry,
                    served.version() + 1
                ),
                None => {
                    return Err(format!(
                    "{} is unreachable, but no standby is healthy and {} members is the minimum",
                    self.nodes[d].entry, self.policy.min_members
                ))
                }
            };
            let config = ClusterConfig::new(served.version() + 1, nodes)
                .map_err(|e| format!("cannot build the new list: {}", e.detail()))?;
            self.retired[d] = true;
            self.last_replacement = Some(now);
            return Ok(Some(Action::Push {
                to: self.push_order(&config),
                config,
                reason,
            }));
        }
        // Nothing dead: bring nodes serving an older list (or none) up to date.
        let lagging: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.up(i)
                    && !matches!(&self.history[i].seen, Some(Some(c)) if c.version() >= served.version())
            })
            .collect();
        if lagging.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = lagging
            .iter()
            .map(|&i| self.nodes[i].admin.clone())
            .collect();
        let to = self
            .push_order(&served)
            .into_iter()
            .filter(|(a, _)| names.contains(a))
            .collect();
        Ok(Some(Action::Push {
            reason: format!(
                "align {} to version {}: they serve an older list or none",
                names.join(" "),
                served.version()
            ),
            config: served,
            to,
        }))
    }

    /// Every reachable node, members of `config` first, each sorted by admin endpoint, with the
    /// version it was seen serving.
    fn push_order(&self, config: &ClusterConfig) -> Vec<(String, Option<u64>)> {
        let mut to: Vec<(bool, String, Option<u64>)> = (0..self.nodes.len())
            .filter(|&i| self.up(i))
            .map(|i| {
                let member = config
                    .nodes()
                    .iter()
                    .any(|n| same_entry(n, &self.nodes[i].entry));
                let seen = match &self.history[i].seen {
                    Some(Some(c)) => Some(c.version()),
                    _ => None,
                };
                (!member, self.nodes[i].admin.clone(), seen)
            })
            .collect();
        to.sort();
        to.into_iter().map(|(_, a, v)| (a, v)).collect()
    }
}
