//! Lowercase hex of digests and tokens on the request paths: the duplicate
//! digest of every crash, the token hash of every result, a fresh token per
//! offer.

/// Lowercase hex of `bytes`, as `hex::encode` gives it. `hex::encode`
/// collects its string a `char` at a time through an iterator, about 1,270
/// instructions for an md5 under callgrind; this pushes into a string of
/// the right size.
pub fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            // A nibble is always a radix-16 digit.
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lower_hex;

    #[test]
    fn matches_the_hex_crate() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(lower_hex(&all), hex::encode(&all));
        assert_eq!(lower_hex(&[]), "");
        assert_eq!(lower_hex(&[0x0f, 0xa0]), "0fa0");
    }
}
