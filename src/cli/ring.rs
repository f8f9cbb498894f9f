//! Owns: the `ferrocache ring` subcommand's options (clap) and its output and exit code.
//! Does not: compute placements or render them (see `cluster::ring`).

use clap::Parser;

use crate::cluster::ring::{parse_node_list_arg, render_ring, RingArgs, MAX_SAMPLE_KEYS};

/// The exit code of every `ring` error.
pub const ERROR_CODE: u8 = 2;

/// `ferrocache ring --nodes NODE[,NODE...] [--add NODE]... [--remove NODE]... [--sample N] [KEY...]`
/// (the help text is `cluster::ring::RING_USAGE`).
#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "ferrocache ring",
    override_help = crate::cluster::ring::RING_USAGE
)]
pub struct RingCmd {
    /// The ring's nodes (repeatable; comma or space separated).
    #[arg(long = "nodes", visible_alias = "node")]
    pub nodes: Vec<String>,
    /// Nodes to add.
    #[arg(long = "add")]
    pub add: Vec<String>,
    /// Nodes to remove.
    #[arg(long = "remove")]
    pub remove: Vec<String>,
    /// Synthetic keys to count moves over when no KEY is given.
    #[arg(long = "sample")]
    pub sample: Option<String>,
    /// Keys to place.
    pub keys: Vec<String>,
}

impl RingCmd {
    /// The nodes parsed, the sample count checked.
    pub fn ring_args(self) -> Result<RingArgs, String> {
        let mut out = RingArgs::default();
        for list in &self.nodes {
            parse_node_list_arg(list, &mut out.nodes)?;
        }
        for list in &self.add {
            parse_node_list_arg(list, &mut out.add)?;
        }
        for list in &self.remove {
            parse_node_list_arg(list, &mut out.remove)?;
        }
        if let Some(v) = &self.sample {
            let n: usize = v
                .parse()
                .map_err(|_| format!("--sample: bad count '{v}'"))?;
            if n > MAX_SAMPLE_KEYS {
                return Err(format!("--sample: at most {MAX_SAMPLE_KEYS}"));
            }
            out.sample = Some(n);
        }
        out.keys = self.keys;
        Ok(out)
    }
}

/// Runs the parsed subcommand: the output to stdout (0), or the error to stderr (2).
pub fn run(cmd: RingCmd) -> u8 {
    match cmd.ring_args().and_then(|a| render_ring(&a)) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            ERROR_CODE
        }
    }
}

/// The whole subcommand from its arguments (those after `ring`): parse, then render. `--help`
/// gives the usage text.
pub fn ring_command<S: AsRef<str>>(args: &[S]) -> Result<String, String> {
    let argv = std::iter::once("ring").chain(args.iter().map(AsRef::as_ref));
    match RingCmd::try_parse_from(argv) {
        Ok(cmd) => render_ring(&cmd.ring_args()?),
        Err(e) if !e.use_stderr() => Ok(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ring::RING_USAGE;

    // ---- CLI -------------------------------------------------------------------------------------------

    #[test]
    fn cli_placement_output() {
        let out = ring_command(&[
            "--nodes",
            "127.0.0.1:11211,127.0.0.1:11212 127.0.0.1:11213",
            "foo",
            "bar",
        ])
        .unwrap_or_default();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ring: nodes 3 points 480");
        assert!(lines[1].starts_with("  node 0 127.0.0.1:11211 weight 1 points 160 share "));
        assert_eq!(
            lines[4],
            "key foo hash 3675831724 point 3682376632 node 127.0.0.1:11211"
        );
        assert_eq!(
            lines[5],
            "key bar hash 421377335 point 437918984 node 127.0.0.1:11212"
        );
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn cli_moves() {
        let out = ring_command(&[
            "--nodes=127.0.0.1:11211,127.0.0.1:11212",
            "--add",
            "127.0.0.1:11213",
            "foo",
            "key2",
            "memcached",
        ])
        .unwrap_or_default();
        assert!(out.contains("after: nodes 3 points 480\n"), "{out}");
        assert!(
            out.contains("move key2 127.0.0.1:11212 -> 127.0.0.1:11213\n"),
            "{out}"
        );
        assert!(out.contains("stay foo 127.0.0.1:11211\n"), "{out}");
        assert!(out.ends_with("moved 2 of 3 keys (66.67%)\n"), "{out}");

        let out = ring_command(&["--nodes", "a,b,c,d", "--remove", "d", "--sample", "1000"])
            .unwrap_or_default();
        assert!(out.contains("after: nodes 3"), "{out}");
        assert!(out
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("moved ") && l.contains(" of 1000 keys")));
    }

    #[test]
    fn cli_errors() {
        assert!(ring_command::<&str>(&[]).is_err());
        assert!(ring_command(&["--nodes"]).is_err());
        assert!(ring_command(&["--nodes", "a:0"]).is_err());
        assert!(ring_command(&["--bogus"]).is_err());
        assert!(ring_command(&["--nodes", "a", "--remove", "b"]).is_err());
        assert!(ring_command(&["--nodes", "a", "--add", "a:11211"]).is_err());
        assert!(ring_command(&["--nodes", "a", "--sample", "x"]).is_err());
        assert_eq!(ring_command(&["--help"]).ok().as_deref(), Some(RING_USAGE));
        // After `--`, option-looking words are keys.
        let out = ring_command(&["--nodes", "a", "--", "--add"]).unwrap_or_default();
        assert!(out.contains("key --add hash "), "{out}");
    }
}
