//! Owns: what the fuzz targets share — a server's state without sockets, and the walks that run
//! every request of a buffer through a parser, checking what every parse must satisfy.

use ferrocache::config::Config;
use ferrocache::protocol::{self, binary, Limits, Parsed};
use ferrocache::state::Shared;

/// A server's shared state built from a command line (no sockets, no threads).
pub fn server(args: &[&str]) -> Shared {
    let argv = std::iter::once("ferrocache").chain(args.iter().copied());
    Shared::new(Config::from_args(argv).expect("fuzz server arguments"))
}

/// Limits as a server applies them, and small ones that make `-I` bite early.
pub fn limits() -> [Limits; 2] {
    [
        Limits::default(),
        Limits {
            item_size_max: 64,
            max_get_line: 300,
            ..Limits::default()
        },
    ]
}

/// Parses every ASCII request of `data` in turn. A complete request uses at least one byte and
/// no more than there is, and parses the same when the bytes after it are cut off.
pub fn walk_ascii(data: &[u8], lim: &Limits) {
    let mut rest = data;
    while let Ok(Parsed::Complete(cmd, used)) = protocol::parse_ascii(rest, lim) {
        assert!(
            used > 0 && used <= rest.len(),
            "used {used} of {}",
            rest.len()
        );
        let again = protocol::parse_ascii(&rest[..used], lim);
        match again {
            Ok(Parsed::Complete(c, u)) => {
                assert_eq!(u, used, "framing depends on what follows");
                assert!(c == cmd, "{c:?} != {cmd:?}");
            }
            other => panic!("{cmd:?} parses as {other:?} without what follows"),
        }
        let skip = match cmd {
            protocol::ascii::Command::Swallow { skip, .. } => skip,
            _ => 0,
        };
        match rest.get(used + skip..) {
            Some(r) if !r.is_empty() => rest = r,
            _ => break,
        }
    }
}

/// Parses every binary request of `data` in turn, checking the frame against its header.
pub fn walk_binary(data: &[u8], lim: &Limits) {
    let mut rest = data;
    while let Ok(Parsed::Complete(f, used)) = binary::parse(rest, lim) {
        let h = f.header;
        assert!(used >= binary::HEADER_LEN && used <= rest.len());
        assert_eq!(f.extras.len(), usize::from(h.extlen));
        assert_eq!(f.key.len(), usize::from(h.keylen));
        assert_eq!(
            used,
            binary::HEADER_LEN + f.extras.len() + f.key.len() + f.value.len()
        );
        if f.check == binary::Check::Ok {
            assert!(f.key.len() <= lim.max_key);
            let body = f.extras.len() + f.key.len() + f.value.len() + f.skip;
            assert_eq!(body, h.bodylen as usize, "{f:?}");
        }
        assert_eq!(
            binary::parse(&rest[..used], lim),
            Ok(Parsed::Complete(f, used))
        );
        match rest.get(used + f.skip..) {
            Some(r) if !r.is_empty() => rest = r,
            _ => break,
        }
    }
}
