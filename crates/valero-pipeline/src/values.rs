//! Parsers for the scalar syntaxes of pipeline.toml (durations, sizes, network
//! grants) and small helpers. Each returns a message (and maybe a help) on error;
//! `validate.rs` attaches the location.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::model::{HttpGrant, PortPattern, TcpGrant, TcpHost};

/// A problem with a value: message and optional help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub message: String,
    pub help: Option<String>,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
            help: None,
        }
    }
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

const DURATION_HELP: &str = "use a number with a unit, e.g. \"30s\", \"5m\", \"1h30m\"";

/// humantime syntax ("30s", "5m", "1h 30m", "250ms"). Zero is allowed only when
/// `allow_zero` (a backoff may be zero, a timeout may not).
pub fn parse_duration(s: &str, allow_zero: bool) -> Result<Duration, ValueError> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| ValueError::new(format!("invalid duration `{s}`")).help(DURATION_HELP))?;
    if d.is_zero() && !allow_zero {
        return Err(ValueError::new("a duration of zero is not allowed").help(DURATION_HELP));
    }
    Ok(d)
}

const SIZE_HELP: &str = "use a whole number of bytes or a number with a unit: B, KB, KiB, MB, MiB, GB, GiB (e.g. \"256MiB\")";

/// A size: integer bytes in a string, or a number with a unit (B, KB, KiB, MB,
/// MiB, GB, GiB; case-insensitive; optional space). Zero is an error.
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let bad = || ValueError::new(format!("invalid size `{s}`")).help(SIZE_HELP);
    if num.is_empty() {
        return Err(bad());
    }
    let mult: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| ValueError::new(format!("size `{s}` is too large")))?;
    if bytes == 0 {
        return Err(ValueError::new("a size of zero is not allowed").help(SIZE_HELP));
    }
    Ok(bytes)
}

fn parse_port(p: &str, what: &str, example: &str) -> Result<PortPattern, ValueError> {
    if p == "*" {
        return Ok(PortPattern::Any);
    }
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(PortPattern::Exact(n)),
        _ => Err(ValueError::new(format!(
            "invalid port `{p}` in {what}: expected 1-65535 or `*`"
        ))
        .help(format!("e.g. \"{example}\""))),
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

const HTTP_HELP: &str =
    "e.g. \"http://127.0.0.1:8080\", \"https://api.example.com\", \"http://[::1]:*\"";

/// `scheme://host[:port][/]` with scheme http or https, port a number or `*`
/// (default 80 / 443), host a name, an IP (IPv6 in brackets) or `*`.
pub fn parse_http_grant(s: &str) -> Result<HttpGrant, ValueError> {
    let err = |m: String| ValueError::new(m).help(HTTP_HELP);
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(err(format!(
            "http grant `{s}` needs a scheme (`http://` or `https://`)"
        )));
    };
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(err(format!(
                "unsupported scheme `{scheme}` in http grant `{s}`: expected `http` or `https`"
            )));
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(err(format!(
            "http grant `{s}` has a path: only scheme, host and port are allowed"
        )));
    }
    if authority.contains('@') {
        return Err(err(format!("http grant `{s}` must not contain user info")));
    }
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let Some((ip, tail)) = after.split_once(']') else {
            return Err(err(format!("missing `]` in http grant `{s}`")));
        };
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| err(format!("invalid IPv6 address `{ip}` in http grant `{s}`")))?;
        let port = match tail {
            "" => None,
            t => match t.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(err(format!("unexpected `{t}` after `]` in `{s}`"))),
            },
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.contains(':') {
            return Err(err(format!(
                "IPv6 addresses in http grants must be in brackets: `{s}`"
            )));
        }
        let host = host.to_ascii_lowercase();
        if host != "*" && host.parse::<IpAddr>().is_err() && !valid_hostname(&host) {
            return Err(err(format!("invalid host `{host}` in http grant `{s}`")));
        }
        (host, port)
    };
    let port = match port {
        None => PortPattern::Exact(default_port),
        Some(p) => parse_port(p, &format!("http grant `{s}`"), "http://127.0.0.1:8080")?,
    };
    Ok(HttpGrant { scheme, host, port })
}

const TCP_HELP: &str =
    "e.g. \"127.0.0.1:5432\", \"10.0.0.0/8:*\", \"localhost:8080\", \"[::1]:5432\"";

/// `HOST:PORT` where HOST is an IP, a CIDR range or `localhost` (IPv6 in
/// brackets) and PORT a number or `*`.
pub fn parse_tcp_grant(s: &str) -> Result<TcpGrant, ValueError> {
    let err = |m: String| ValueError::new(m).help(TCP_HELP);
    let (host, port) = if let Some(after) = s.strip_prefix('[') {
        let Some((h, tail)) = after.split_once(']') else {
            return Err(err(format!("missing `]` in tcp grant `{s}`")));
        };
        let Some(p) = tail.strip_prefix(':') else {
            return Err(err(format!(
                "tcp grant `{s}` needs a port (a number or `*`)"
            )));
        };
        (h, p)
    } else {
        let Some((h, p)) = s.rsplit_once(':') else {
            return Err(err(format!(
                "tcp grant `{s}` needs a port (a number or `*`)"
            )));
        };
        if h.contains(':') {
            return Err(err(format!(
                "IPv6 addresses in tcp grants must be in brackets: `{s}`"
            )));
        }
        (h, p)
    };
    let host = if host.eq_ignore_ascii_case("localhost") {
        TcpHost::Localhost
    } else {
        TcpHost::Net(parse_net(host).map_err(|_| {
            err(format!(
                "invalid host `{host}` in tcp grant `{s}`: expected an IP address, a CIDR range or `localhost`"
            ))
        })?)
    };
    let port = parse_port(port, &format!("tcp grant `{s}`"), "127.0.0.1:5432")?;
    Ok(TcpGrant { host, port })
}

const LOOKUP_HELP: &str = "list each host name the stage resolves itself, e.g. \"db.internal\" (IP addresses need no lookup)";

/// A host name a stage may look up: letters, digits and `-` in dot-separated
/// labels of 1 to 63 characters, at most 253 in all; lower-cased, one
/// trailing dot dropped. No wildcards: a stage could encode anything in the
/// labels it looks up under a wildcard, and the query carries it out.
pub fn parse_lookup_grant(s: &str) -> Result<String, ValueError> {
    let err = |m: String| ValueError::new(m).help(LOOKUP_HELP);
    let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    if name.contains('*') {
        return Err(err(format!(
            "wildcards are not allowed in lookup grant `{s}`: a stage could send data out in the names it looks up"
        )));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(err(format!(
            "lookup grant `{s}` is an IP address, which needs no lookup"
        )));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(err(format!("`{s}` is not a valid host name")));
    }
    Ok(name)
}

/// A CIDR range (host bits are cleared) or a bare IP (→ /32 or /128).
pub fn parse_net(s: &str) -> Result<IpNet, ValueError> {
    if s.contains('/') {
        s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
            ValueError::new(format!("invalid CIDR range `{s}`"))
                .help("e.g. \"127.0.0.0/8\", \"10.1.0.0/16\", \"::1/128\"")
        })
    } else {
        s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            ValueError::new(format!("invalid IP address `{s}`"))
                .help("e.g. \"127.0.0.1\", \"::1\" or a range like \"10.0.0.0/8\"")
        })
    }
}

/// Stage names: `[a-z0-9][a-z0-9_-]*`.
pub fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The closest candidate to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?` when one is close, else the list of candidates.
pub fn suggestion<'a, I>(word: &str, candidates: I, what: &str) -> Option<String>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    if let Some(c) = did_you_mean(word, candidates.clone()) {
        return Some(format!("did you mean `{c}`?"));
    }
    let list: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    if list.is_empty() {
        None
    } else {
        Some(format!("{what}: {}", list.join(", ")))
    }
}

/// Joins `p` onto `base` (unless absolute) and removes `.` and `..` lexically
/// (no file system access; `..` never climbs above the root).
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    normalize(&base.join(p))
}

pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `/..` is `/`.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s", false), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m", false), Ok(Duration::from_secs(300)));
        assert_eq!(
            parse_duration("1h30m", false),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("1h 30m", false),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("250ms", false),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(parse_duration("0s", true), Ok(Duration::ZERO));
        let e = parse_duration("0s", false).unwrap_err();
        assert_eq!(e.message, "a duration of zero is not allowed");
        for bad in ["60", "sixty seconds", "", "5 parsecs", "-1s"] {
            let e = parse_duration(bad, false).unwrap_err();
            assert!(e.message.starts_with("invalid duration"), "{bad}: {e:?}");
            assert_eq!(e.help.as_deref(), Some(DURATION_HELP));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("3kib"), Ok(3072));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("512B"), Ok(512));
        for bad in ["", "MiB", "1.5GiB", "12TB", "-1", "1 2MiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    fn http(s: &str) -> (String, String, PortPattern) {
        let g = parse_http_grant(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        (g.scheme, g.host, g.port)
    }

    #[test]
    fn http_grants() {
        use PortPattern::*;
        let t = |a: &str, b: &str, p| (a.to_string(), b.to_string(), p);
        assert_eq!(http("http://127.0.0.1:*"), t("http", "127.0.0.1", Any));
        assert_eq!(
            http("http://127.0.0.1:8080"),
            t("http", "127.0.0.1", Exact(8080))
        );
        assert_eq!(
            http("https://API.Example.com"),
            t("https", "api.example.com", Exact(443))
        );
        assert_eq!(http("http://localhost/"), t("http", "localhost", Exact(80)));
        assert_eq!(http("HTTPS://[::1]:*"), t("https", "::1", Any));
        assert_eq!(http("http://[::1]"), t("http", "::1", Exact(80)));
        assert_eq!(http("https://*:443"), t("https", "*", Exact(443)));
        for bad in [
            "127.0.0.1:8080",
            "ftp://host",
            "http://host/path",
            "http://host:8080/api",
            "http://host?x=1",
            "http://user@host",
            "http://::1:80",
            "http://[::1",
            "http://[nope]:80",
            "http://host:0",
            "http://host:70000",
            "http://host:",
            "http://",
            "http://bad host",
        ] {
            assert!(parse_http_grant(bad).is_err(), "{bad}");
        }
        let e = parse_http_grant("127.0.0.1:80").unwrap_err();
        assert!(e.message.contains("needs a scheme"));
        let e = parse_http_grant("http://h/x").unwrap_err();
        assert!(e.message.contains("has a path"));
    }

    #[test]
    fn tcp_grants() {
        let ok = |s: &str| parse_tcp_grant(s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        let net = |s: &str| TcpHost::Net(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")));
        assert_eq!(
            ok("127.0.0.1:5432"),
            TcpGrant {
                host: net("127.0.0.1/32"),
                port: PortPattern::Exact(5432)
            }
        );
        assert_eq!(
            ok("10.0.0.0/8:*"),
            TcpGrant {
                host: net("10.0.0.0/8"),
                port: PortPattern::Any
            }
        );
        assert_eq!(
            ok("10.1.2.3/8:22"),
            TcpGrant {
                host: net("10.0.0.0/8"),
                port: PortPattern::Exact(22)
            }
        );
        assert_eq!(
            ok("localhost:8080"),
            TcpGrant {
                host: TcpHost::Localhost,
                port: PortPattern::Exact(8080)
            }
        );
        assert_eq!(
            ok("[::1]:5432"),
            TcpGrant {
                host: net("::1/128"),
                port: PortPattern::Exact(5432)
            }
        );
        assert_eq!(
            ok("[fd00::/8]:*"),
            TcpGrant {
                host: net("fd00::/8"),
                port: PortPattern::Any
            }
        );
        for bad in [
            "127.0.0.1",
            "::1:5432",
            "db.example.com:5432",
            "127.0.0.1:http",
            "127.0.0.1:0",
            "10.0.0.0/33:*",
            "[::1]",
            "[::1]5432",
            ":5432",
        ] {
            assert!(parse_tcp_grant(bad).is_err(), "{bad}");
        }
        assert!(TcpHost::Localhost.matches("::1".parse().unwrap_or(IpAddr::from([0; 4]))));
    }

    #[test]
    fn nets_and_names() {
        assert_eq!(parse_net("::1").ok(), "::1/128".parse().ok());
        assert_eq!(parse_net("127.0.0.1").ok(), "127.0.0.1/32".parse().ok());
        assert_eq!(parse_net("127.0.0.0/8").ok(), "127.0.0.0/8".parse().ok());
        assert!(parse_net("localhost").is_err());
        assert!(valid_stage_name("deploy-k8s_2"));
        assert!(valid_stage_name("0ab"));
        assert!(!valid_stage_name("-ab"));
        assert!(!valid_stage_name("Deploy"));
        assert!(!valid_stage_name(""));
        assert_eq!(did_you_mean("timout", ["timeout", "time"]), Some("timeout"));
        assert_eq!(did_you_mean("xyz", ["timeout"]), None);
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d/..")),
            PathBuf::from("/a/c")
        );
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }
}
