//! The string formats kube-apiserver checks in custom resources
//! ([strfmt](https://github.com/kubernetes/kube-openapi/tree/master/pkg/validation/strfmt) as
//! registered by `apiextensions-apiserver/pkg/apiserver/validation/formats.go`).
//!
//! A format is looked up as strfmt does, with every `-` removed (`date-time` is `datetime`), and
//! only the formats in apiextensions' supported list ([`supported`]) are checked; any other
//! format is stripped from the schema and accepts every string. The checks are ports of Go's: `net/url`,
//! `net.ParseMAC`, `k8s.io/utils/net`'s sloppy IP parsing (leading zeros allowed) and the
//! govalidator functions kube-openapi froze in `third_party/govalidator`.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use regex::Regex;

fn re(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

// Go's `\d` and `\s` are ASCII (`[0-9]`, `[\t\n\f\r ]`), so the patterns spell them out.
static UUID: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID4: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static UUID5: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static HOSTNAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^[^@\s<>]+@[^@\s<>]+$"));
static HEXCOLOR: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGBCOLOR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let n = r"(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])";
    let s = r"[\t\n\x0C\r ]*";
    re(&format!(r"^rgb\({s}{n}{s},{s}{n}{s},{s}{n}{s}\)$"))
});
static BASE64: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"));
static CREDITCARD: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$",
    )
});
static SSN: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$"));
static ISBN10: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^(?:[0-9]{9}X|[0-9]{10})$"));
static ISBN13: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^(?:[0-9]{13})$"));
static BSON: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^[0-9a-fA-F]{24}$"));
static DURATION: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"^(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ns|us|µs|ms|s|m|h|d|w|[a-z]+)\s*)+$"));
static SHORT_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"));
static LONG_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"));

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_none_or(|r| r.is_match(s))
}

/// The formats apiextensions checks in CR schemas, as strfmt names them (without dashes):
/// its supported list at Kubernetes 1.34 and later, which added `k8s-short-name` and
/// `k8s-long-name`. Every other format is stripped from the schema.
const SUPPORTED: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// A format name as strfmt's name normalizer sees it: every dash removed, so `date-time` is
/// `datetime` and `k8s-short-name` is `k8sshortname`.
fn normalized(format: &str) -> String {
    format.replace('-', "")
}

/// Whether kube-apiserver keeps `format` in a CR schema and checks strings against it.
pub(crate) fn supported(format: &str) -> bool {
    SUPPORTED.contains(&normalized(format).as_str())
}

/// Whether `s` is valid for `format`; formats kube does not check (`password`, and any
/// format not [`supported`]) are always valid.
pub(crate) fn valid(format: &str, s: &str) -> bool {
    if !supported(format) {
        return true;
    }
    match normalized(format).as_str() {
        "datetime" => date_time(s),
        "date" => s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok(),
        "byte" => matches(&BASE64, s),
        "uri" => request_uri(s),
        "email" => matches(&EMAIL, s),
        "hostname" => hostname(s),
        "uuid" => matches(&UUID, s),
        "uuid3" => matches(&UUID3, s),
        "uuid4" => matches(&UUID4, s),
        "uuid5" => matches(&UUID5, s),
        "ipv4" => ip_sloppy(s) && s.contains('.'),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "mac" => mac(s),
        "isbn" => isbn10(s) || isbn13(s),
        "isbn10" => isbn10(s),
        "isbn13" => isbn13(s),
        "creditcard" => credit_card(s),
        "ssn" => s.len() == 11 && matches(&SSN, s),
        "hexcolor" => matches(&HEXCOLOR, s),
        "rgbcolor" => matches(&RGBCOLOR, s),
        "bsonobjectid" => matches(&BSON, s),
        "duration" => matches(&DURATION, s),
        "k8sshortname" => s.len() <= 63 && matches(&SHORT_NAME, s),
        "k8slongname" => s.len() <= 253 && matches(&LONG_NAME, s),
        _ => true,
    }
}

/// RFC 3339 date-times, also without seconds' fraction or with a space instead of `T`.
fn date_time(s: &str) -> bool {
    if s.parse::<jiff::Timestamp>().is_ok() {
        return true;
    }
    // strfmt also accepts a date-time without an offset (read as UTC).
    s.len() >= 19 && s.parse::<jiff::civil::DateTime>().is_ok() && s.as_bytes().get(10).is_some_and(|b| *b == b'T')
}

/// strfmt's `IsHostname`: the pattern, at most 255 bytes, and no label over 63 bytes.
fn hostname(s: &str) -> bool {
    matches(&HOSTNAME, s) && s.len() <= 255 && s.split('.').all(|label| label.len() <= 63)
}

/// Removes what govalidator's `[\s-]+` matches (Go's `\s` is ASCII).
fn without_spaces_and_dashes(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\x0C' | '\r' | ' ' | '-'))
        .collect()
}

/// govalidator's `IsISBN10`: nine digits and a check digit (or `X` for ten), weighted 1 to 10,
/// summing to a multiple of 11.
fn isbn10(s: &str) -> bool {
    let s = without_spaces_and_dashes(s);
    if !matches(&ISBN10, &s) {
        return false;
    }
    let sum: u32 = s
        .bytes()
        .zip(1..)
        .map(|(b, weight)| weight * if b == b'X' { 10 } else { u32::from(b - b'0') })
        .sum();
    sum.is_multiple_of(11)
}

/// govalidator's `IsISBN13`: weights 1 and 3 alternate, and the last digit makes the sum a
/// multiple of 10.
fn isbn13(s: &str) -> bool {
    let s = without_spaces_and_dashes(s);
    if !matches(&ISBN13, &s) {
        return false;
    }
    let digits: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits
        .iter()
        .take(12)
        .zip([1, 3].iter().cycle())
        .map(|(d, w)| d * w)
        .sum();
    digits.get(12).is_some_and(|check| *check == (10 - sum % 10) % 10)
}

/// govalidator's `IsCreditCard`: the digits (every other character dropped) match a card
/// issuer's pattern and pass the Luhn check.
fn credit_card(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !matches(&CREDITCARD, &digits) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| match (i % 2 == 1, d * 2) {
            (false, _) => d,
            (true, twice) if twice >= 10 => twice % 10 + 1,
            (true, twice) => twice,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `net.ParseMAC`: 6, 8 or 20 octets as hex pairs all separated by the same `:` or `-`, or as
/// groups of four hex digits separated by `.`.
fn mac(s: &str) -> bool {
    let b = s.as_bytes();
    let hex_pair = |i: usize| b.get(i..i + 2).is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit));
    if b.len() < 14 {
        return false;
    }
    if b[2] == b':' || b[2] == b'-' {
        let sep = b[2];
        if !(b.len() + 1).is_multiple_of(3) || ![6, 8, 20].contains(&((b.len() + 1) / 3)) {
            return false;
        }
        (0..b.len())
            .step_by(3)
            .all(|x| hex_pair(x) && b.get(x + 2).is_none_or(|c| *c == sep))
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) || ![6, 8, 20].contains(&(2 * (b.len() + 1) / 5)) {
            return false;
        }
        (0..b.len())
            .step_by(5)
            .all(|x| hex_pair(x) && hex_pair(x + 2) && b.get(x + 4).is_none_or(|c| *c == b'.'))
    } else {
        false
    }
}

/// Go's `net.ParseCIDR` as `k8s.io/utils/net.ParseCIDRSloppy` keeps it: a sloppy address, `/`,
/// and a decimal prefix length that fits the address.
fn cidr(s: &str) -> bool {
    let Some((addr, mask)) = s.split_once('/') else {
        return false;
    };
    let bits = if ipv4_sloppy(addr.as_bytes()) {
        32
    } else if ipv6_sloppy(addr.as_bytes()) {
        128
    } else {
        return false;
    };
    dtoi(mask.as_bytes()).is_some_and(|(n, used)| used == mask.len() && n <= bits)
}

/// `k8s.io/utils/net.ParseIPSloppy`: Go 1.16's `net.ParseIP`, which allows leading zeros.
fn ip_sloppy(s: &str) -> bool {
    match s.bytes().find(|b| *b == b'.' || *b == b':') {
        Some(b'.') => ipv4_sloppy(s.as_bytes()),
        Some(_) => ipv6_sloppy(s.as_bytes()),
        None => false,
    }
}

/// Go's values past which `dtoi` and `xtoi` give up.
const BIG: u32 = 0xFF_FFFF;

/// The leading decimal number of `s` and the digits it used; `None` without digits or when
/// it reaches [`BIG`].
fn dtoi(s: &[u8]) -> Option<(u32, usize)> {
    number(s, 10)
}

/// Like [`dtoi`] in hexadecimal.
fn xtoi(s: &[u8]) -> Option<(u32, usize)> {
    number(s, 16)
}

fn number(s: &[u8], radix: u32) -> Option<(u32, usize)> {
    let mut n = 0u32;
    let mut used = 0;
    for d in s.iter().map_while(|b| char::from(*b).to_digit(radix)) {
        n = n * radix + d;
        used += 1;
        if n >= BIG {
            return None;
        }
    }
    (used > 0).then_some((n, used))
}

fn ipv4_sloppy(mut s: &[u8]) -> bool {
    for i in 0..4 {
        if i > 0 {
            let Some(rest) = s.strip_prefix(b".") else {
                return false;
            };
            s = rest;
        }
        match dtoi(s) {
            Some((n, used)) if n <= 0xFF => s = &s[used..],
            _ => return false,
        }
    }
    s.is_empty()
}

fn ipv6_sloppy(mut s: &[u8]) -> bool {
    let mut ellipsis = false;
    if let Some(rest) = s.strip_prefix(b"::") {
        ellipsis = true;
        s = rest;
        if s.is_empty() {
            return true;
        }
    }
    // Bytes of the address filled so far.
    let mut filled = 0;
    while filled < 16 {
        let Some((n, used)) = xtoi(s) else {
            return false;
        };
        if n > 0xFFFF {
            return false;
        }
        if s.get(used) == Some(&b'.') {
            // A trailing IPv4 address fills the last four bytes.
            if (!ellipsis && filled != 12) || filled + 4 > 16 || !ipv4_sloppy(s) {
                return false;
            }
            s = &[];
            filled += 4;
            break;
        }
        filled += 2;
        s = &s[used..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' || s.len() == 1 {
            return false;
        }
        s = &s[1..];
        if let Some(rest) = s.strip_prefix(b":") {
            if ellipsis {
                return false;
            }
            ellipsis = true;
            s = rest;
            if s.is_empty() {
                break;
            }
        }
    }
    // An ellipsis stands for at least one group of zeros.
    s.is_empty() && (filled < 16) == ellipsis
}

/// `url.ParseRequestURI` succeeds (Go 1.25, with its check of bracketed hosts): an absolute
/// URI or an absolute path, with well-formed `%` escapes; a query is not looked into.
fn request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < b' ' || b == 0x7F) {
        return false;
    }
    if s == "*" {
        return true;
    }
    let Some((scheme, rest)) = scheme(s) else {
        return false;
    };
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    if !rest.starts_with('/') {
        // A scheme with a rootless path is opaque and not looked into; a relative path is no
        // request URI.
        return !scheme.is_empty();
    }
    let mut path = rest;
    if !scheme.is_empty()
        && let Some(after) = rest.strip_prefix("//")
    {
        let (authority, p) = after.find('/').map_or((after, ""), |i| after.split_at(i));
        if !valid_authority(authority) {
            return false;
        }
        path = p;
    }
    unescape(path, Escape::Path).is_some()
}

/// Go's `getScheme`: the scheme (empty when there is none) and the rest; `None` when the
/// string starts with `:`.
fn scheme(s: &str) -> Option<(&str, &str)> {
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => return Some((&s[..i], &s[i + 1..])),
            _ => return Some(("", s)),
        }
    }
    Some(("", s))
}

/// Go's `parseAuthority`: `[userinfo@]host[:port]`.
fn valid_authority(authority: &str) -> bool {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if !valid_host(host) {
        return false;
    }
    userinfo.is_none_or(|u| {
        u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
            && unescape(u, Escape::UserPassword).is_some()
    })
}

/// Go's `parseHost`: a bracketed IPv6 address (with a `%25` zone) or a name, then an
/// optional `:port`.
fn valid_host(host: &str) -> bool {
    match host.rfind('[') {
        Some(0) => {
            let Some(close) = host.rfind(']') else {
                return false;
            };
            if !optional_port(&host[close + 1..]) {
                return false;
            }
            let inner = &host[1..close];
            let unescaped = match inner.find("%25") {
                Some(z) => unescape(&inner[..z], Escape::Host)
                    .zip(unescape(&inner[z..], Escape::Zone))
                    .map(|(mut h, zone)| {
                        h.extend(zone);
                        h
                    }),
                None => unescape(inner, Escape::Host),
            };
            // Only an IPv6 address may be in brackets (`netip.ParseAddr`, not an IPv4 one).
            unescaped
                .and_then(|b| String::from_utf8(b).ok())
                .is_some_and(|addr| ipv6_literal(&addr))
        }
        // A bracket anywhere else is no IP literal.
        Some(_) => false,
        None => host.rfind(':').is_none_or(|i| optional_port(&host[i..])) && unescape(host, Escape::Host).is_some(),
    }
}

/// `netip.ParseAddr` gives an IPv6 address, possibly with a non-empty zone.
fn ipv6_literal(s: &str) -> bool {
    let (addr, zone) = s.split_once('%').map_or((s, None), |(a, z)| (a, Some(z)));
    zone.is_none_or(|z| !z.is_empty()) && addr.parse::<Ipv6Addr>().is_ok()
}

/// Empty, or `:` and decimal digits.
fn optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// The parts of a URL Go's `unescape` checks differently.
#[derive(Clone, Copy, PartialEq)]
enum Escape {
    Path,
    Host,
    Zone,
    UserPassword,
}

/// Go's `unescape`: `s` with its `%XX` escapes decoded, or `None` when an escape is malformed
/// or, in a host, escapes or spells a byte a host may not have.
fn unescape(s: &str, mode: Escape) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let hex = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let in_host = matches!(mode, Escape::Host | Escape::Zone);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (hi, lo) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
            let v = (hi << 4) | lo;
            let is_25 = v == 0x25;
            // In a host only non-ASCII bytes may be escaped (and `%25`, which starts a zone).
            if mode == Escape::Host && hi < 8 && !is_25 {
                return None;
            }
            // In a zone an escape may only spell a byte a host could have, or a space.
            if mode == Escape::Zone && !is_25 && v != b' ' && !host_byte(v) {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            if in_host && b[i] < 0x80 && !host_byte(b[i]) {
                return None;
            }
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Go's `!shouldEscape(c, encodeHost)`: the bytes a host may have unescaped.
fn host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for re in [
            &UUID,
            &UUID3,
            &UUID4,
            &UUID5,
            &HOSTNAME,
            &EMAIL,
            &HEXCOLOR,
            &RGBCOLOR,
            &BASE64,
            &CREDITCARD,
            &SSN,
            &ISBN10,
            &ISBN13,
            &BSON,
            &DURATION,
            &SHORT_NAME,
            &LONG_NAME,
        ] {
            assert!(re.is_some());
        }
    }

    #[test]
    fn the_supported_list_ignores_dashes_and_leaves_out_unregistered_formats() {
        for f in [
            "uri",
            "date-time",
            "datetime",
            "is-bn",
            "k8s-short-name",
            "k8s-long-name",
            "password",
        ] {
            assert!(supported(f), "{f}");
        }
        for f in ["int32", "k8s-ip-sloppy", "semver", "quantity", "uuid7", "URI"] {
            assert!(!supported(f), "{f}");
        }
    }

    #[test]
    fn formats_accept_good_and_reject_bad_strings() {
        let table = [
            ("date-time", "2024-01-02T03:04:05Z", true),
            ("date-time", "2024-01-02T03:04:05.123+02:00", true),
            ("date-time", "yesterday", false),
            ("datetime", "yesterday", false),
            ("date", "2024-02-29", true),
            ("date", "2023-02-29", false),
            // byte: govalidator's base64 pattern, so not empty, and non-zero padding bits pass.
            ("byte", "aGVsbG8=", true),
            ("byte", "QR==", true),
            ("byte", "not base64!", false),
            ("byte", "", false),
            ("byte", "aGVsbG8", false),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", true),
            ("uuid", "123e4567", false),
            ("uuid4", "123e4567-e89b-42d3-a456-426614174000", true),
            ("uuid4", "123e4567-e89b-12d3-a456-426614174000", false),
            // ipv4: leading zeros pass (k8s.io/utils/net sloppy parsing), and so does an
            // IPv4-mapped IPv6 address, as it has a dot.
            ("ipv4", "10.0.0.1", true),
            ("ipv4", "010.000.000.001", true),
            ("ipv4", "::ffff:10.0.0.1", true),
            ("ipv4", "10.0.0.256", false),
            ("ipv4", "10.0.0", false),
            ("ipv4", "::1", false),
            ("ipv6", "::1", true),
            ("ipv6", "2001:db8::ffff:10.0.0.1", true),
            ("ipv6", "10.0.0.1", false),
            ("ipv6", "fe80::1%eth0", false),
            ("cidr", "10.0.0.0/8", true),
            ("cidr", "010.0.0.0/08", true),
            ("cidr", "2001:db8::/32", true),
            ("cidr", "::ffff:10.0.0.0/104", true),
            ("cidr", "10.0.0.0/33", false),
            ("cidr", "10.0.0.0/+8", false),
            ("cidr", "10.0.0.0", false),
            // mac: net.ParseMAC, so 6, 8 or 20 octets and one separator throughout.
            ("mac", "01:23:45:67:89:ab", true),
            ("mac", "01-23-45-67-89-ab-cd-ef", true),
            ("mac", "0123.4567.89ab", true),
            ("mac", "0123.4567.89ab.cdef.0000.0123.4567.89ab.cdef.0000", true),
            (
                "mac",
                "01:23:45:67:89:ab:cd:ef:00:00:01:23:45:67:89:ab:cd:ef:00:00",
                true,
            ),
            ("mac", "01:23-45:67:89:ab", false),
            ("mac", "01:23:45:67:89", false),
            ("mac", "0123.4567-89ab", false),
            ("mac", "0123", false),
            ("hostname", "example.com", true),
            ("hostname", "bad_host!", false),
            // hostname: Go counts a label's bytes, the pattern its characters.
            ("hostname", &format!("{}.com", "é".repeat(40)), false),
            ("hostname", &format!("a-{}", "b".repeat(62)), false),
            ("hostname", &format!("{}.com", "é".repeat(30)), true),
            // hexcolor: the # is optional.
            ("hexcolor", "#FFF", true),
            ("hexcolor", "ff00aa", true),
            ("hexcolor", "#ff00a", false),
            ("rgbcolor", "rgb(255,255,255)", true),
            ("rgbcolor", "rgb( 0 , 10 , 199 )", true),
            ("rgbcolor", "rgb(256,0,0)", false),
            ("rgbcolor", "rgb(01,0,0)", false),
            ("rgbcolor", "rgba(0,0,0,1)", false),
            // isbn: spaces and dashes are dropped; the check digit must be right.
            ("isbn10", "0321751043", true),
            ("isbn10", "0-321-75104-3", true),
            ("isbn10", "080442957X", true),
            ("isbn10", "0321751044", false),
            ("isbn10", "978-0321751041", false),
            ("isbn13", "978-0321751041", true),
            ("isbn13", "978 0 321 75104 1", true),
            ("isbn13", "9780321751042", false),
            ("isbn13", "0321751043", false),
            ("isbn", "0321751043", true),
            ("isbn", "978-0321751041", true),
            ("isbn", "1234567890", false),
            ("isbn", "", false),
            // creditcard: every non-digit is dropped, then an issuer's pattern and Luhn.
            ("creditcard", "4111111111111111", true),
            ("creditcard", "4111-1111-1111-1111", true),
            ("creditcard", "4111 1111 1111 1111 card", true),
            ("creditcard", "4111111111111112", false),
            ("creditcard", "1234567812345670", false),
            // ssn: exactly 11 bytes, so both separators.
            ("ssn", "123-45-6789", true),
            ("ssn", "123 45-6789", true),
            ("ssn", "123456789", false),
            ("ssn", "123-45-678", false),
            // uri: url.ParseRequestURI.
            ("uri", "https://example.com/path?q=1#frag", true),
            ("uri", "http://user:p@ss@example.com:8080/", true),
            ("uri", "http://[fe80::1%25en0]:80/", true),
            ("uri", "http://[::ffff:10.0.0.1]/", true),
            ("uri", "/absolute/path", true),
            ("uri", "mailto:someone@example.com", true),
            ("uri", "urn:isbn:0451450523", true),
            ("uri", "*", true),
            ("uri", "http://example.com/a%20b", true),
            ("uri", "example.com", false),
            ("uri", "relative/path", false),
            ("uri", "", false),
            ("uri", ":no-scheme", false),
            ("uri", "http://example.com/%zz", false),
            ("uri", "http://exa mple.com/", false),
            ("uri", "http://example.com:80a/", false),
            ("uri", "http://[10.0.0.1]/", false),
            ("uri", "http://[fe80::1/", false),
            ("uri", "http://a[::1]/", false),
            ("uri", "http://ex%41mple.com/", false),
            ("uri", "http://us\"er@example.com/", false),
            ("uri", "http://example.com/\u{7f}", false),
            ("k8s-short-name", "my-name", true),
            ("k8s-short-name", "My-name", false),
            ("k8s-short-name", "a.b", false),
            ("k8s-short-name", &"a".repeat(64), false),
            ("k8s-long-name", "a.b-c.d", true),
            ("k8s-long-name", &format!("{}.b", "a".repeat(64)), true),
            ("k8s-long-name", "a..b", false),
            ("k8s-long-name", &"a".repeat(254), false),
            // Formats are named as strfmt normalizes them, with every dash removed.
            ("ip-v4", "10.0.0.256", false),
            ("k8sshortname", "My-name", false),
            // Unchecked: password, formats outside the supported list, and unknown ones.
            ("password", "anything", true),
            ("k8s-ip-sloppy", "not an ip", true),
            ("semver", "not a version", true),
            ("int32", "x", true),
        ];
        for (format, s, want) in table {
            assert_eq!(valid(format, s), want, "{format} {s:?}");
        }
    }
}
