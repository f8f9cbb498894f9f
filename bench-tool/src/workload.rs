//! Owns: the workload model: key table, self-checking values, key choice (uniform, zipf, sequential, ranges) and the fast RNG.
//! Long because: its unit tests (about 190 lines: key table, value checks, distributions) sit beside the code.
//!
//! Keys are `key:` followed by a zero-padded decimal index, all of the same width, generated once into one flat
//! buffer. Values are a deterministic function of the key index and their own length, so any hit can be checked
//! without remembering what was written: bytes 0..4 hold a hash of the key index (u32 LE), bytes 4..8 the length
//! and the rest is a slice of a fixed printable pool at an offset derived from the key. A value of a different
//! size than the current `--value-size` spec (left over from an earlier run) still validates; a truncated, corrupted
//! or swapped value does not. Values shorter than 8 bytes validate only at the length the current spec gives them.

/// Prefix of every generated key.
pub const KEY_PREFIX: &[u8] = b"key:";
/// Largest value size the tool will generate.
pub const MAX_VALUE_SIZE: usize = 64 << 20;
/// Pool slack: value bodies start at `hash % POOL_SLACK` inside the pool.
const POOL_SLACK: usize = 4096;
/// Bytes of the self-describing value header (length + key hash).
const HEADER: usize = 8;

/// splitmix64 finaliser: a good 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Small, fast, seedable RNG (splitmix64 stream).
#[derive(Clone, Debug)]
pub struct FastRng {
    state: u64,
}

impl FastRng {
    pub fn new(seed: u64) -> Self {
        FastRng {
            state: mix64(seed ^ 0x5DEE_CE66_D1CE_5EED),
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n` (n > 0), multiply-shift (negligible bias for n << 2^64).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform float in `[0, 1)`.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// All keys, pre-generated as fixed-width byte strings in one buffer.
pub struct KeyTable {
    bytes: Vec<u8>,
    size: usize,
    count: u32,
}

impl KeyTable {
    /// Smallest key size able to hold `count` distinct keys.
    pub fn min_key_size(count: u32) -> usize {
        KEY_PREFIX.len() + count.saturating_sub(1).max(1).to_string().len()
    }

    pub fn new(count: u32, size: usize) -> Result<Self, String> {
        if count == 0 {
            return Err("--keys must be at least 1".into());
        }
        let min = Self::min_key_size(count);
        if size < min || size > 250 {
            return Err(format!(
                "--key-size must be in {min}..=250 for {count} keys"
            ));
        }
        let width = size - KEY_PREFIX.len();
        let mut bytes = Vec::with_capacity(count as usize * size);
        for i in 0..count {
            bytes.extend_from_slice(KEY_PREFIX);
            let digits = format!("{i:0width$}");
            bytes.extend_from_slice(digits.as_bytes());
        }
        Ok(KeyTable { bytes, size, count })
    }

    #[inline]
    pub fn key(&self, idx: u32) -> &[u8] {
        let start = idx as usize * self.size;
        &self.bytes[start..start + self.size]
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Index of a key this table generated, or `None` for anything else.
    pub fn index_of(&self, key: &[u8]) -> Option<u32> {
        if key.len() != self.size || !key.starts_with(KEY_PREFIX) {
            return None;
        }
        let mut n: u64 = 0;
        for &b in &key[KEY_PREFIX.len()..] {
            if !b.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(b - b'0');
            if n >= u64::from(self.count) {
                return None;
            }
        }
        Some(n as u32)
    }
}

/// Value size spec: fixed (`min == max`) or an inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeSpec {
    pub min: usize,
    pub max: usize,
}

impl std::str::FromStr for SizeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad size '{t}' (want N or MIN-MAX)"))
        };
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let n = parse(s)?;
                (n, n)
            }
        };
        if min > max {
            return Err(format!("size range {min}-{max} is reversed"));
        }
        if max > MAX_VALUE_SIZE {
            return Err(format!("value size {max} exceeds {MAX_VALUE_SIZE}"));
        }
        Ok(SizeSpec { min, max })
    }
}

/// Generates and checks values.
pub struct ValueGen {
    spec: SizeSpec,
    pool: Vec<u8>,
}

impl ValueGen {
    pub fn new(spec: SizeSpec) -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        // Independent of --seed and of the size spec, so values written by one run validate in the next.
        let len = spec.max.max(1 << 20) + POOL_SLACK;
        let mut rng = FastRng::new(0xF0CA_CC1E);
        let mut pool = Vec::with_capacity(len);
        while pool.len() < len {
            let mut r = rng.next_u64();
            for _ in 0..10 {
                pool.push(ALPHABET[(r & 63) as usize]);
                r >>= 6;
            }
        }
        pool.truncate(len);
        ValueGen { spec, pool }
    }

    #[inline]
    fn key_hash(idx: u32) -> u64 {
        mix64(u64::from(idx) ^ 0xA5A5_0000_0000_0000)
    }

    /// Length of the value written for key `idx` under the current spec.
    #[inline]
    pub fn len_for(&self, idx: u32) -> usize {
        let span = (self.spec.max - self.spec.min) as u64;
        if span == 0 {
            self.spec.min
        } else {
            self.spec.min + ((Self::key_hash(idx) >> 20) % (span + 1)) as usize
        }
    }

    #[inline]
    fn header(idx: u32, len: usize) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(&(Self::key_hash(idx) as u32).to_le_bytes());
        h[4..].copy_from_slice(&(len as u32).to_le_bytes());
        h
    }

    #[inline]
    fn body_offset(idx: u32) -> usize {
        (Self::key_hash(idx) >> 40) as usize % POOL_SLACK
    }

    /// Appends the value for `idx` (length `len_for(idx)`) to `out`.
    #[inline]
    pub fn write_value(&self, idx: u32, out: &mut Vec<u8>) {
        let len = self.len_for(idx);
        let header = Self::header(idx, len);
        if len <= HEADER {
            out.extend_from_slice(&header[..len]);
        } else {
            out.extend_from_slice(&header);
            let off = Self::body_offset(idx);
            out.extend_from_slice(&self.pool[off..off + len - HEADER]);
        }
    }

    /// True when `data` is a value this generator writes for key `idx` (at any length).
    #[inline]
    pub fn validate(&self, idx: u32, data: &[u8]) -> bool {
        let len = data.len();
        let header = Self::header(idx, len);
        if len <= HEADER {
            // Too short to carry the whole header: only the exact length this spec writes for the key is
            // accepted, so a server answering every get with an empty or tiny value fails.
            return len == self.len_for(idx) && data == &header[..len];
        }
        let off = Self::body_offset(idx);
        data[..HEADER] == header
            && off + len - HEADER <= self.pool.len()
            && data[HEADER..] == self.pool[off..off + len - HEADER]
    }
}

/// Zipf distribution over ranks `1..=n` with exponent `s > 0`, by rejection-inversion
/// (Hörmann & Derflinger 1996). O(1) memory and expected O(1) time; the loop is capped.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

/// Upper bound on rejection rounds per sample (acceptance is > 50% per round, so never reached in practice).
const ZIPF_MAX_ROUNDS: usize = 64;

impl Zipf {
    pub fn new(n: u64, s: f64) -> Self {
        assert!(n >= 1 && s > 0.0 && s.is_finite());
        let mut z = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(n as f64 + 0.5);
        z.cut = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    fn helper1(x: f64) -> f64 {
        if x.abs() > 1e-8 {
            x.ln_1p() / x
        } else {
            1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
        }
    }

    fn helper2(x: f64) -> f64 {
        if x.abs() > 1e-8 {
            x.exp_m1() / x
        } else {
            1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        Self::helper2((1.0 - self.s) * log_x) * log_x
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let mut t = x * (1.0 - self.s);
        if t < -1.0 {
            t = -1.0;
        }
        (Self::helper1(t) * x).exp()
    }

    /// A rank in `1..=n`; rank 1 is the most frequent.
    pub fn sample(&self, rng: &mut FastRng) -> u64 {
        let mut k = 1.0;
        for _ in 0..ZIPF_MAX_ROUNDS {
            let u = self.h_n + rng.next_f64() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inv(u);
            k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.cut || u >= self.h_integral(k + 0.5) - self.h(k) {
                break;
            }
        }
        k as u64
    }
}

/// How keys are picked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyPattern {
    Uniform,
    Zipf(f64),
    Sequential,
}

impl std::str::FromStr for KeyPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" | "random" => Ok(KeyPattern::Uniform),
            "sequential" | "seq" => Ok(KeyPattern::Sequential),
            "zipf" => Ok(KeyPattern::Zipf(0.99)),
            _ => match s.strip_prefix("zipf:") {
                Some(t) => match t.parse::<f64>() {
                    Ok(v) if v.is_finite() && v > 0.0 && v <= 10.0 => Ok(KeyPattern::Zipf(v)),
                    _ => Err(format!("bad zipf skew '{t}' (want 0 < skew <= 10)")),
                },
                None => Err(format!(
                    "bad key pattern '{s}' (want uniform, zipf:<skew> or sequential)"
                )),
            },
        }
    }
}

impl std::fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPattern::Uniform => write!(f, "uniform"),
            KeyPattern::Zipf(s) => write!(f, "zipf:{s}"),
            KeyPattern::Sequential => write!(f, "sequential"),
        }
    }
}

/// The slice of the key space that one connection works on. With several servers, key `k` belongs to server
/// `k % servers`, and each connection only picks keys of its own server; the connections of one server split
/// that server's keys into equal, contiguous runs (used by `sequential` and by preload).
#[derive(Clone, Copy, Debug)]
pub struct Lane {
    pub server: u32,
    pub servers: u32,
    /// This connection's rank among the connections of its server, and their number.
    pub rank: u32,
    pub peers: u32,
}

impl Lane {
    /// Number of keys that belong to this lane's server.
    fn server_keys(&self, keys: u32) -> u64 {
        (u64::from(keys) - u64::from(self.server)).div_ceil(u64::from(self.servers))
    }

    /// Position range (in the server's key list) owned by this connection.
    fn own_range(&self, keys: u32) -> (u64, u64) {
        let total = self.server_keys(keys);
        let lo = total * u64::from(self.rank) / u64::from(self.peers);
        let hi = total * (u64::from(self.rank) + 1) / u64::from(self.peers);
        (lo, hi)
    }

    #[inline]
    fn key_at(&self, pos: u64) -> u32 {
        (u64::from(self.server) + pos * u64::from(self.servers)) as u32
    }
}

/// Per-connection key stream.
pub struct KeySource {
    lane: Lane,
    keys: u32,
    kind: SourceKind,
    rng: FastRng,
}

enum SourceKind {
    Uniform,
    Zipf(Zipf),
    /// Endless walk over the server's keys, starting at this connection's run.
    Cycle {
        pos: u64,
        total: u64,
    },
    /// Each of this connection's keys once (preload).
    Once {
        pos: u64,
        end: u64,
    },
}

impl KeySource {
    pub fn new(pattern: KeyPattern, keys: u32, lane: Lane, seed: u64) -> Self {
        let kind = match pattern {
            KeyPattern::Uniform => SourceKind::Uniform,
            KeyPattern::Zipf(s) => SourceKind::Zipf(Zipf::new(u64::from(keys), s)),
            KeyPattern::Sequential => SourceKind::Cycle {
                pos: lane.own_range(keys).0,
                total: lane.server_keys(keys),
            },
        };
        KeySource {
            lane,
            keys,
            kind,
            rng: FastRng::new(seed),
        }
    }

    /// Source yielding each key of this connection's run exactly once.
    pub fn once(keys: u32, lane: Lane) -> Self {
        let (pos, end) = lane.own_range(keys);
        KeySource {
            lane,
            keys,
            kind: SourceKind::Once { pos, end },
            rng: FastRng::new(0),
        }
    }

    /// Maps any key index onto the nearest key of this lane's server.
    #[inline]
    fn fit(&self, k: u32) -> u32 {
        if self.lane.servers == 1 {
            return k;
        }
        let n = self.lane.servers;
        let k2 = k - k % n + self.lane.server;
        if k2 >= self.keys {
            k2 - n
        } else {
            k2
        }
    }

    #[inline]
    pub fn next_key(&mut self) -> Option<u32> {
        match &mut self.kind {
            SourceKind::Uniform => {
                let k = self.rng.below(u64::from(self.keys)) as u32;
                Some(self.fit(k))
            }
            SourceKind::Zipf(z) => {
                let k = (z.sample(&mut self.rng) - 1) as u32;
                Some(self.fit(k))
            }
            SourceKind::Cycle { pos, total } => {
                let k = self.lane.key_at(*pos);
                *pos += 1;
                if *pos >= *total {
                    *pos = 0;
                }
                Some(k)
            }
            SourceKind::Once { pos, end } => {
                if *pos >= *end {
                    return None;
                }
                let k = self.lane.key_at(*pos);
                *pos += 1;
                Some(k)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_and_parse_back() {
        let t = KeyTable::new(1000, 16).unwrap();
        assert_eq!(t.key(0), b"key:000000000000");
        assert_eq!(t.key(999), b"key:000000000999");
        for i in [0, 1, 500, 999] {
            assert_eq!(t.index_of(t.key(i)), Some(i));
        }
        assert_eq!(t.index_of(b"key:000000001000"), None);
        assert_eq!(t.index_of(b"key:00000000099x"), None);
        assert_eq!(t.index_of(b"key:0999"), None);
        assert!(KeyTable::new(1000, 6).is_err());
        assert!(KeyTable::new(1000, 7).is_ok());
    }

    #[test]
    fn values_validate_only_for_their_key() {
        for spec in ["0", "5", "8", "9", "100", "1-300"] {
            let g = ValueGen::new(spec.parse().unwrap());
            let mut buf = Vec::new();
            for idx in 0..200u32 {
                buf.clear();
                g.write_value(idx, &mut buf);
                assert_eq!(buf.len(), g.len_for(idx));
                assert!(g.validate(idx, &buf), "spec {spec} idx {idx}");
                if buf.len() >= 4 {
                    assert!(!g.validate(idx + 1, &buf));
                }
                if !buf.is_empty() {
                    let mut bad = buf.clone();
                    let last = bad.len() - 1;
                    bad[last] ^= 1;
                    assert!(!g.validate(idx, &bad));
                    // Truncation shows once the length field is reached (values of 6+ bytes).
                    if buf.len() >= 6 {
                        assert!(!g.validate(idx, &buf[..buf.len() - 1]));
                    }
                }
            }
        }
        // Empty or tiny values pass only where the spec writes them.
        let g = ValueGen::new("100".parse().unwrap());
        assert!(!g.validate(3, b""));
        // A value written under another size spec still validates.
        let a = ValueGen::new("100".parse().unwrap());
        let b = ValueGen::new("64-4096".parse().unwrap());
        let mut buf = Vec::new();
        a.write_value(7, &mut buf);
        assert!(b.validate(7, &buf));
    }

    #[test]
    fn size_spec_parses() {
        assert_eq!(
            "100".parse::<SizeSpec>().unwrap(),
            SizeSpec { min: 100, max: 100 }
        );
        assert_eq!(
            "64-4096".parse::<SizeSpec>().unwrap(),
            SizeSpec { min: 64, max: 4096 }
        );
        assert!("10-5".parse::<SizeSpec>().is_err());
        assert!("x".parse::<SizeSpec>().is_err());
    }

    #[test]
    fn zipf_distribution_is_sane() {
        let n = 1000u64;
        let s = 0.99;
        let z = Zipf::new(n, s);
        let mut rng = FastRng::new(42);
        let draws = 400_000;
        let mut counts = vec![0u64; n as usize + 1];
        for _ in 0..draws {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k));
            counts[k as usize] += 1;
        }
        let norm: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        for k in [1u64, 2, 3, 10, 100] {
            let expected = draws as f64 * (k as f64).powf(-s) / norm;
            let got = counts[k as usize] as f64;
            let tol = 5.0 * expected.sqrt() + 0.02 * expected;
            assert!(
                (got - expected).abs() < tol,
                "rank {k}: got {got}, expected {expected:.0}"
            );
        }
        // Monotone on aggregate: the first decile gets far more than the last.
        let first: u64 = counts[1..=100].iter().sum();
        let last: u64 = counts[901..=1000].iter().sum();
        assert!(first > 10 * last);
    }

    #[test]
    fn zipf_terminates_for_extreme_parameters() {
        let mut rng = FastRng::new(7);
        for &(n, s) in &[
            (1u64, 0.5),
            (2, 0.01),
            (2, 10.0),
            (1_000_000_000, 0.0001),
            (1_000_000_000, 1.0),
            (1_000_000_000, 10.0),
            (10, 1.0),
        ] {
            let z = Zipf::new(n, s);
            for _ in 0..10_000 {
                let k = z.sample(&mut rng);
                assert!((1..=n).contains(&k), "n {n} s {s} gave {k}");
            }
        }
        // s = 10 puts nearly everything on rank 1.
        let z = Zipf::new(1000, 10.0);
        let ones = (0..10_000).filter(|_| z.sample(&mut rng) == 1).count();
        assert!(ones > 9_900);
    }

    #[test]
    fn lanes_partition_the_key_space() {
        let keys = 1003u32;
        for servers in 1..=3u32 {
            for per_server in 1..=4u32 {
                let mut seen = vec![0u8; keys as usize];
                for server in 0..servers {
                    for rank in 0..per_server {
                        let lane = Lane {
                            server,
                            servers,
                            rank,
                            peers: per_server,
                        };
                        let mut src = KeySource::once(keys, lane);
                        while let Some(k) = src.next_key() {
                            assert_eq!(k % servers, server);
                            seen[k as usize] += 1;
                        }
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "servers {servers} x {per_server}"
                );
            }
        }
    }

    #[test]
    fn random_keys_stay_on_their_server() {
        let lane = Lane {
            server: 2,
            servers: 3,
            rank: 0,
            peers: 1,
        };
        for pattern in [
            KeyPattern::Uniform,
            KeyPattern::Zipf(0.9),
            KeyPattern::Sequential,
        ] {
            let mut src = KeySource::new(pattern, 10, lane, 1);
            for _ in 0..1000 {
                let k = src.next_key().unwrap();
                assert!(k < 10 && k % 3 == 2, "{pattern}: {k}");
            }
        }
    }

    #[test]
    fn key_pattern_parses() {
        assert_eq!(
            "uniform".parse::<KeyPattern>().unwrap(),
            KeyPattern::Uniform
        );
        assert_eq!(
            "zipf:1.2".parse::<KeyPattern>().unwrap(),
            KeyPattern::Zipf(1.2)
        );
        assert_eq!(
            "sequential".parse::<KeyPattern>().unwrap(),
            KeyPattern::Sequential
        );
        assert!("zipf:0".parse::<KeyPattern>().is_err());
        assert!("zipf:-1".parse::<KeyPattern>().is_err());
        assert!("gauss".parse::<KeyPattern>().is_err());
    }
}
