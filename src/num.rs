//! Owns: memcached's number rules (`safe_strtol`, `safe_strtoul`, `safe_strtoull`), byte for byte:
//! leading white space, an optional sign, decimal digits, and then the end of the token or white
//! space. A leaf shared by `protocol` (tokens) and `store` (incr/decr on a stored value); it
//! imports nothing from the crate.

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Parses like C `strtoull` base 10; returns (magnitude, negative) or None.
fn parse(tok: &[u8]) -> Option<(u64, bool)> {
    let mut i = 0;
    while i < tok.len() && is_space(tok[i]) {
        i += 1;
    }
    let mut neg = false;
    if let Some(&s) = tok.get(i) {
        if s == b'+' || s == b'-' {
            neg = s == b'-';
            i += 1;
        }
    }
    let start = i;
    let mut n: u64 = 0;
    while let Some(&d) = tok.get(i) {
        if !d.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    if i == start {
        return None;
    }
    match tok.get(i) {
        None => Some((n, neg)),
        Some(&b) if is_space(b) => Some((n, neg)),
        Some(_) => None,
    }
}

/// `safe_strtoull`: a u64; a minus sign is refused unless the value is zero.
pub fn strtoull(tok: &[u8]) -> Option<u64> {
    let (n, neg) = parse(tok)?;
    if neg {
        let r = n.wrapping_neg();
        if (r as i64) < 0 {
            return None;
        }
        return Some(r);
    }
    Some(n)
}

/// `safe_strtoul` into a u32 (on 64-bit Linux): parsed as an unsigned long, refused when it reads
/// negative with a minus sign, then truncated to 32 bits as memcached does.
pub fn strtoul32(tok: &[u8]) -> Option<u32> {
    strtoull(tok).map(|v| v as u32)
}

/// `safe_strtol` into an i32 (1.6.18 on 64-bit Linux): parsed as a long (refused only outside
/// the i64 range, `ERANGE`), then silently truncated to 32 bits as the C assignment does
/// (`2147483648` reads as `-2147483648`, `4294967297` as `1`).
pub fn strtol32(tok: &[u8]) -> Option<i32> {
    let (n, neg) = parse(tok)?;
    let v: i64 = if neg {
        if n > (i64::MAX as u64) + 1 {
            return None;
        }
        (n as i64).wrapping_neg()
    } else {
        i64::try_from(n).ok()?
    };
    Some(v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoull_rules() {
        assert_eq!(strtoull(b" 12 "), Some(12));
        assert_eq!(strtoull(b"007"), Some(7));
        assert_eq!(strtoull(b"-5"), None);
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtoull(b""), None);
        assert_eq!(strtoull(b"12a"), None);
        assert_eq!(strtoull(b"18446744073709551616"), None);
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn strtol_rules() {
        assert_eq!(strtol32(b"12"), Some(12));
        assert_eq!(strtol32(b"-12"), Some(-12));
        assert_eq!(strtol32(b"+7"), Some(7));
        assert_eq!(strtol32(b"2147483647"), Some(i32::MAX));
        assert_eq!(strtol32(b"2147483648"), Some(i32::MIN));
        assert_eq!(strtol32(b"4294967297"), Some(1));
        assert_eq!(strtol32(b"9223372036854775807"), Some(-1));
        assert_eq!(strtol32(b"9223372036854775808"), None);
        assert_eq!(strtol32(b"-9223372036854775808"), Some(0));
        assert_eq!(strtol32(b"-9223372036854775809"), None);
        assert_eq!(strtol32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(strtol32(b"12a"), None);
        assert_eq!(strtol32(b""), None);
        assert_eq!(strtol32(b"-"), None);
        assert_eq!(strtol32(b"1\r"), Some(1));
    }

    #[test]
    fn strtoul_rules() {
        assert_eq!(strtoul32(b"4294967296"), Some(0));
        assert_eq!(strtoul32(b"-1"), None);
        assert_eq!(strtoul32(b"-0"), Some(0));
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull(b"18446744073709551616"), None);
        assert_eq!(strtoull(b"-5"), None);
    }
}
