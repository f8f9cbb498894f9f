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

    /// One round: `probes[i]` is node `i`'s result at `now`. Returns at most one action.
    pub fn round(&mut self, now: Instant, probes: Vec<Probe>) -> Option<Action> {
        for (h, p) in self.history.iter_mut().zip(probes) {
            match p {
                Probe::Up(c) => {
                    h.failures = 0;
                    h.down_since = None;
                    h.successes = h.successes.saturating_add(1);
                    h.seen = Some(c);
                }
                Probe::Down => {
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn node(i: u16) -> ClusterNode {
        ClusterNode::new("localhost", "127.0.0.1", 100 + i)
    }

    /// Members 0..m and standbys m..m+s; policy: grace 3 s, 3 probes, one replacement per 10 s.
    fn sup(m: u16, s: u16, min: usize) -> Supervisor {
        let known = (0..m + s)
            .map(|i| Known {
                entry: node(i),
                admin: format!("a:{i}"),
                standby: i >= m,
            })
            .collect();
        let policy = Policy {
            grace: 3 * S,
            grace_probes: 3,
            replace_interval: 10 * S,
            min_members: min,
        };
        Supervisor::new(policy, known)
    }

    fn config(v: u64, members: &[u16]) -> ClusterConfig {
        ClusterConfig::new(v, members.iter().map(|&i| node(i)).collect()).unwrap()
    }

    /// Probes: `down` nodes fail, the others serve `served` (standbys serve nothing).
    fn probes(n: u16, members: u16, served: &ClusterConfig, down: &[u16]) -> Vec<Probe> {
        (0..n)
            .map(|i| match i {
                _ if down.contains(&i) => Probe::Down,
                _ if i < members => Probe::Up(Some(served.clone())),
                _ => Probe::Up(None),
            })
            .collect()
    }

    fn pushed(a: Option<Action>) -> (ClusterConfig, Vec<(String, Option<u64>)>, String) {
        match a {
            Some(Action::Push { config, to, reason }) => (config, to, reason),
            other => panic!("expected a push, got {other:?}"),
        }
    }

    /// Runs rounds one second apart from `t`, returning the actions.
    fn rounds(
        s: &mut Supervisor,
        t: &mut Instant,
        n: usize,
        p: impl Fn() -> Vec<Probe>,
    ) -> Vec<Option<Action>> {
        (0..n)
            .map(|_| {
                *t += S;
                s.round(*t, p())
            })
            .collect()
    }

    #[test]
    fn a_dead_member_is_replaced_after_the_grace_period_and_probes() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        // The standby answers twice before the failure: not yet healthy (3 needed), but will be.
        let a = rounds(&mut s, &mut t, 2, || probes(4, 3, &v1, &[]));
        assert!(
            a.iter().all(|a| matches!(a, Some(Action::Push { .. }))),
            "{a:?}"
        );
        // Aligning the standby (no config) to version 1.
        let (c, to, why) = pushed(a[0].clone());
        assert_eq!((c.version(), to), (1, vec![("a:3".to_string(), None)]));
        assert!(why.starts_with("align a:3 to version 1"), "{why}");
        // Member 1 dies: rounds at +1 s, +2 s see it down, not for 3 s yet.
        let served = |v: &ClusterConfig| {
            let v = v.clone();
            move || {
                let mut p = probes(4, 3, &v, &[1]);
                p[3] = Probe::Up(Some(v.clone()));
                p
            }
        };
        let a = rounds(&mut s, &mut t, 3, served(&v1));
        assert_eq!(a, vec![None, None, None], "within the grace period");
        let (c, to, why) = pushed(rounds(&mut s, &mut t, 1, served(&v1)).remove(0));
        assert_eq!(c, config(2, &[0, 2, 3]));
        assert_eq!(
            to,
            vec![
                ("a:0".to_string(), Some(1)),
                ("a:2".to_string(), Some(1)),
                ("a:3".to_string(), Some(1)),
            ],
            "members of the new list first, each conditional on the version it serves"
        );
        assert_eq!(
            why,
            "replace localhost|127.0.0.1|101 by standby localhost|127.0.0.1|103 in version 2: \
             unreachable for 3.0s (4 failed probes)"
        );
        assert!(s.retired(1));
        // Once served, nothing more to do.
        let v2 = c;
        let a = rounds(&mut s, &mut t, 3, || {
            let mut p = probes(4, 4, &v2, &[1]);
            p[1] = Probe::Down;
            p
        });
        assert_eq!(a, vec![None, None, None]);
        // The replaced node comes back with its old list: it is aligned, never swapped back.
        let a = rounds(&mut s, &mut t, 20, || {
            let mut p = probes(4, 4, &v2, &[]);
            p[1] = Probe::Up(Some(v1.clone()));
            p
        });
        let (c, to, why) = pushed(a[0].clone());
        assert_eq!((c, to), (v2.clone(), vec![("a:1".to_string(), Some(1))]));
        assert!(why.starts_with("align a:1"), "{why}");
    }

    #[test]
    fn the_time_and_the_count_both_matter() {
        // Many probes in under the grace period: not dead.
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        let p = || {
            let mut p = probes(4, 3, &v1, &[2]);
            p[3] = Probe::Up(Some(v1.clone()));
            p
        };
        for _ in 0..20 {
            t += S / 10;
            assert_eq!(s.round(t, p()), None);
        }
        // Past the grace period, but one probe short: a slow prober needs its probes too.
        let mut s = sup(3, 1, 3);
        let mut t = Instant::now();
        for _ in 0..3 {
            s.round(t, probes(4, 3, &v1, &[]));
        }
        s.round(t, p());
        t += 10 * S;
        assert_eq!(s.round(t, p()), None);
        t += S;
        assert!(matches!(s.round(t, p()), Some(Action::Push { .. })));
    }

    #[test]
    fn a_flapping_member_is_not_replaced() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        for round in 0..200 {
            t += S;
            // Down for two rounds out of three: never for a whole grace period.
            let down: &[u16] = if round % 3 == 0 { &[] } else { &[0] };
            let mut p = probes(4, 3, &v1, down);
            p[3] = Probe::Up(Some(v1.clone()));
            assert_eq!(s.round(t, p), None, "round {round}");
        }
    }

    #[test]
    fn no_majority_no_action() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        let p = || {
            let mut p = probes(4, 3, &v1, &[1, 2]);
            p[3] = Probe::Up(Some(v1.clone()));
            p
        };
        let a = rounds(&mut s, &mut t, 30, p);
        assert_eq!(
            a[0],
            Some(Action::Hold(
                "reaches 1 of 3 members of version 1: no majority, doing nothing".into()
            ))
        );
        assert!(a[1..].iter().all(Option::is_none), "logged once: {a:?}");
        // Two of four is not a majority either.
        let mut s = sup(4, 1, 4);
        let v1 = config(1, &[0, 1, 2, 3]);
        let a = rounds(&mut s, &mut t, 30, || probes(5, 4, &v1, &[0, 1]));
        assert!(matches!(&a[0], Some(Action::Hold(w)) if w.contains("no majority")));
        assert!(a[1..].iter().all(Option::is_none));
    }

    #[test]
    fn one_replacement_per_interval_and_never_below_the_minimum() {
        // Five members, two standbys, two members die together.
        let mut s = sup(5, 2, 5);
        let v1 = config(1, &[0, 1, 2, 3, 4]);
        let mut t = Instant::now();
        let healthy = |v: &ClusterConfig| {
            let v = v.clone();
            move || {
                let mut p = probes(7, 5, &v, &[]);
                p[5] = Probe::Up(Some(v.clone()));
                p[6] = Probe::Up(Some(v.clone()));
                p
            }
        };
        rounds(&mut s, &mut t, 3, healthy(&v1));
        let down = |v: &ClusterConfig| {
            let v = v.clone();
            move || {
                let mut p = healthy(&v)();
                p[1] = Probe::Down;
                p[3] = Probe::Down;
                p
            }
        };
        let a = rounds(&mut s, &mut t, 4, down(&v1));
        let (v2, _, why) = pushed(a[3].clone());
        assert_eq!(v2, config(2, &[0, 2, 3, 4, 5]), "{why}");
        // The second dead member waits for the replacement interval.
        let a = rounds(&mut s, &mut t, 9, down(&v2));
        assert!(
            matches!(&a[0], Some(Action::Hold(w)) if w.contains("last replacement")),
            "{a:?}"
        );
        assert!(a[1..].iter().all(Option::is_none), "{a:?}");
        let (v3, _, _) = pushed(rounds(&mut s, &mut t, 1, down(&v2)).remove(0));
        assert_eq!(v3, config(3, &[0, 2, 4, 5, 6]));
        // A third death with no standby left: at the minimum, the list stays.
        let a = rounds(&mut s, &mut t, 20, || {
            let mut p = probes(7, 7, &v3, &[0, 1, 3]);
            p[0] = Probe::Down;
            p
        });
        // Logged once per reason: first the interval, then the minimum.
        let holds: Vec<&Action> = a.iter().flatten().collect();
        assert_eq!(holds.len(), 2, "{holds:?}");
        assert!(
            matches!(holds[1], Action::Hold(w) if w.contains("no standby is healthy and 5 members is the minimum")),
            "{holds:?}"
        );
        // With a lower minimum it is removed.
        let mut s = sup(3, 0, 2);
        let v1 = config(1, &[0, 1, 2]);
        let a = rounds(&mut s, &mut t, 5, || probes(3, 3, &v1, &[2]));
        let (c, _, why) = pushed(a[3].clone());
        assert_eq!(c, config(2, &[0, 1]));
        assert!(why.starts_with("remove localhost|127.0.0.1|102 in version 2 (no healthy standby)"));
    }

    #[test]
    fn an_unhealthy_standby_is_not_used() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        // The standby answers only every other round: never 3 in a row.
        for round in 0..30 {
            t += S;
            let down: &[u16] = if round % 2 == 0 { &[1, 3] } else { &[1] };
            let a = s.round(t, probes(4, 3, &v1, down));
            // Only the standby is aligned (it serves nothing); no replacement.
            assert!(
                !matches!(&a, Some(Action::Push { config, .. }) if config.version() > 1),
                "round {round}: {a:?}"
            );
        }
    }

    #[test]
    fn different_lists_under_one_version_stop_everything() {
        let mut s = sup(3, 1, 3);
        let a = config(2, &[0, 1, 3]);
        let b = config(2, &[0, 2, 3]);
        let mut t = Instant::now();
        let r = rounds(&mut s, &mut t, 10, || {
            vec![
                Probe::Up(Some(a.clone())),
                Probe::Up(Some(a.clone())),
                Probe::Up(Some(b.clone())),
                Probe::Down,
            ]
        });
        assert!(
            matches!(&r[0], Some(Action::Hold(w)) if w.contains("different lists under version 2"))
        );
        assert!(r[1..].iter().all(Option::is_none));
    }

    #[test]
    fn two_supervisors_seeing_the_same_decide_the_same() {
        let v1 = config(1, &[0, 1, 2]);
        let run = || {
            let mut s = sup(3, 2, 3);
            let mut t = Instant::now();
            let a = rounds(&mut s, &mut t, 8, || {
                let mut p = probes(5, 3, &v1, &[2]);
                p[3] = Probe::Up(Some(v1.clone()));
                p[4] = Probe::Up(Some(v1.clone()));
                p
            });
            a.into_iter().flatten().collect::<Vec<_>>()
        };
        let (x, y) = (run(), run());
        let pushes = x
            .iter()
            .filter(|a| matches!(a, Action::Push { .. }))
            .count();
        assert_eq!(pushes, 1, "{x:?}");
        assert_eq!(
            x, y,
            "same list, same version, same order: the first node decides the race"
        );
    }
}
