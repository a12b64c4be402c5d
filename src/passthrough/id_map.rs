//! In-daemon uid/gid translation (`--translate-uid`, `--translate-gid`, virtiofsd's syntax):
//! the guest's ids become host ids for the caller's credentials and for chown, and host ids
//! become guest ids in the attributes returned to the guest. An id no rule covers passes
//! unchanged.
//!
//! Rules, `TYPE:SOURCE:TARGET:COUNT` (ids `SOURCE..SOURCE+COUNT`):
//! - `guest:G:H:N` guest ids G.. are host ids H.. (guest to host only);
//! - `host:H:G:N` host ids H.. are shown as guest ids G.. (host to guest only);
//! - `squash-guest:G:H:N` guest ids G.. all become host id H;
//! - `squash-host:H:G:N` host ids H.. are all shown as guest id G;
//! - `forbid-guest:G:N` a request as guest id G.. (creating, chown to it) fails with EPERM;
//! - `map:G:H:N` both `guest:G:H:N` and `host:H:G:N`.
//!
//! The first rule that covers an id in the needed direction decides.

use std::io;
use std::str::FromStr;

/// One translation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRule {
    /// Guest ids `guest..guest+count` are host ids `host..`.
    Guest { guest: u32, host: u32, count: u32 },
    /// Host ids `host..host+count` are guest ids `guest..`.
    Host { host: u32, guest: u32, count: u32 },
    /// Guest ids `guest..guest+count` all become host id `host`.
    SquashGuest { guest: u32, host: u32, count: u32 },
    /// Host ids `host..host+count` are all shown as guest id `guest`.
    SquashHost { host: u32, guest: u32, count: u32 },
    /// Guest ids `guest..guest+count` may not be used.
    ForbidGuest { guest: u32, count: u32 },
    /// Both directions: guest `guest..` is host `host..`.
    Map { guest: u32, host: u32, count: u32 },
}

/// A translation rule that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "bad id translation {rule:?}: {why} (expected TYPE:SOURCE:TARGET:COUNT with TYPE guest, \
     host, squash-guest, squash-host or map, or forbid-guest:SOURCE:COUNT)"
)]
pub struct IdRuleError {
    rule: String,
    why: &'static str,
}

impl FromStr for IdRule {
    type Err = IdRuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| IdRuleError {
            rule: s.to_owned(),
            why,
        };
        let mut fields = s.split(':');
        let kind = fields.next().unwrap_or_default();
        let nums = fields
            .map(|f| {
                f.parse::<u32>()
                    .map_err(|_| err("an id or count is not a number"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rule = match (kind, nums.as_slice()) {
            ("forbid-guest", &[guest, count]) => Self::ForbidGuest { guest, count },
            ("forbid-guest", _) => return Err(err("forbid-guest takes SOURCE:COUNT")),
            ("guest", &[guest, host, count]) => Self::Guest { guest, host, count },
            ("host", &[host, guest, count]) => Self::Host { host, guest, count },
            ("squash-guest", &[guest, host, count]) => Self::SquashGuest { guest, host, count },
            ("squash-host", &[host, guest, count]) => Self::SquashHost { host, guest, count },
            ("map", &[guest, host, count]) => Self::Map { guest, host, count },
            ("guest" | "host" | "squash-guest" | "squash-host" | "map", _) => {
                return Err(err("it takes SOURCE:TARGET:COUNT"));
            }
            _ => return Err(err("unknown type")),
        };
        let (source, target, count) = match rule {
            Self::ForbidGuest { guest, count } => (guest, 0, count),
            Self::Guest { guest, host, count }
            | Self::SquashGuest { guest, host, count }
            | Self::Map { guest, host, count } => (guest, host, count),
            Self::Host { host, guest, count } | Self::SquashHost { host, guest, count } => {
                (host, guest, count)
            }
        };
        let squash = matches!(rule, Self::SquashGuest { .. } | Self::SquashHost { .. });
        let fits = |base: u32| {
            base.checked_add(count - 1)
                .is_some_and(|end| end != u32::MAX)
        };
        if count == 0 {
            return Err(err("the count is 0"));
        }
        // u32::MAX is "no id" to the kernel: no range may reach it.
        if !fits(source)
            || (!squash && !matches!(rule, Self::ForbidGuest { .. }) && !fits(target))
            || target == u32::MAX
        {
            return Err(err("the range reaches past the largest id"));
        }
        Ok(rule)
    }
}

/// The translation of one id kind (uids or gids): an ordered list of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdTranslation {
    rules: Vec<IdRule>,
}

impl IdTranslation {
    /// The translation made of `rules`, first match wins.
    pub fn new(rules: Vec<IdRule>) -> Self {
        Self { rules }
    }

    /// Whether no rule is set (every id passes unchanged).
    pub fn is_identity(&self) -> bool {
        self.rules.is_empty()
    }

    /// The host id for guest id `id`.
    ///
    /// # Errors
    /// `EPERM` when a `forbid-guest` rule covers `id`.
    pub fn to_host(&self, id: u32) -> io::Result<u32> {
        let within = |base: u32, count: u32| id.checked_sub(base).filter(|off| *off < count);
        for rule in &self.rules {
            match *rule {
                IdRule::Guest { guest, host, count } | IdRule::Map { guest, host, count } => {
                    if let Some(off) = within(guest, count) {
                        return Ok(host + off);
                    }
                }
                IdRule::SquashGuest { guest, host, count } => {
                    if within(guest, count).is_some() {
                        return Ok(host);
                    }
                }
                IdRule::ForbidGuest { guest, count } => {
                    if within(guest, count).is_some() {
                        return Err(io::Error::from_raw_os_error(libc::EPERM));
                    }
                }
                IdRule::Host { .. } | IdRule::SquashHost { .. } => {}
            }
        }
        Ok(id)
    }

    /// The guest id for host id `id`.
    pub fn to_guest(&self, id: u32) -> u32 {
        let within = |base: u32, count: u32| id.checked_sub(base).filter(|off| *off < count);
        for rule in &self.rules {
            match *rule {
                IdRule::Host { host, guest, count } | IdRule::Map { guest, host, count } => {
                    if let Some(off) = within(host, count) {
                        return guest + off;
                    }
                }
                IdRule::SquashHost { host, guest, count } => {
                    if within(host, count).is_some() {
                        return guest;
                    }
                }
                IdRule::Guest { .. } | IdRule::SquashGuest { .. } | IdRule::ForbidGuest { .. } => {}
            }
        }
        id
    }
}

/// Uid and gid translations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uids: IdTranslation,
    pub gids: IdTranslation,
}

impl IdMap {
    /// Rewrites the owner of `st` from host to guest ids.
    pub fn attr_to_guest(&self, st: &mut libc::stat64) {
        st.st_uid = self.uids.to_guest(st.st_uid);
        st.st_gid = self.gids.to_guest(st.st_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(rules: &[&str]) -> IdTranslation {
        IdTranslation::new(rules.iter().map(|r| r.parse().unwrap()).collect())
    }

    #[test]
    fn every_type_parses_as_virtiofsd_spells_it() {
        assert_eq!(
            "guest:1000:2000:10".parse::<IdRule>().unwrap(),
            IdRule::Guest {
                guest: 1000,
                host: 2000,
                count: 10
            }
        );
        assert_eq!(
            "host:2000:1000:10".parse::<IdRule>().unwrap(),
            IdRule::Host {
                host: 2000,
                guest: 1000,
                count: 10
            }
        );
        assert!("squash-guest:0:65534:4294967295".parse::<IdRule>().is_ok());
        assert!("squash-host:0:0:4294967295".parse::<IdRule>().is_ok());
        assert!("forbid-guest:0:1".parse::<IdRule>().is_ok());
        assert!("map:0:100000:65536".parse::<IdRule>().is_ok());
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "",
            "guest",
            "guest:1:2",
            "guest:1:2:3:4",
            "guest:x:2:3",
            "bogus:1:2:3",
            "forbid-guest:1:2:3",
            "map:0:0:0",
            "map:4294967290:0:10",
            "map:0:4294967290:10",
            "squash-guest:0:4294967295:1",
        ] {
            assert!(bad.parse::<IdRule>().is_err(), "{bad:?} must be refused");
        }
    }

    /// Hostile command-line input: separators, signs, overflow, huge and non-ASCII fields
    /// are errors naming the rule, never a panic.
    #[test]
    fn hostile_rules_are_refused() {
        let long = format!("map:{}:0:1", "9".repeat(10_000));
        for bad in [
            ":",
            ":::",
            "map:",
            "map:::",
            "map:0:1:1:",
            ":map:0:1:1",
            " map:0:1:1",
            "MAP:0:1:1",
            "map:0:1:-1",
            "map:-1:0:1",
            "map:0:1:4294967296",
            "map:1:0:4294967295",
            "guest:0:4294967295:1",
            "host:4294967295:0:1",
            "forbid-guest:4294967295:1",
            "forbid-guest:0:0",
            "squash-host:0:1:0",
            "map:\u{663}:1:1",
            "map:0\0:1:1",
            long.as_str(),
        ] {
            let e = bad.parse::<IdRule>().expect_err(bad);
            assert!(
                e.to_string().contains(&format!("{bad:?}")),
                "{e} must name {bad:?}"
            );
        }
    }

    #[test]
    fn guest_to_host() {
        let t = tr(&[
            "forbid-guest:0:1",
            "guest:1000:2000:10",
            "squash-guest:5000:65534:100",
            "host:7:8:1",
        ]);
        assert_eq!(t.to_host(0).unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert_eq!(t.to_host(1000).unwrap(), 2000);
        assert_eq!(t.to_host(1009).unwrap(), 2009);
        assert_eq!(t.to_host(1010).unwrap(), 1010, "past the range: unchanged");
        assert_eq!(t.to_host(5050).unwrap(), 65534);
        assert_eq!(t.to_host(8).unwrap(), 8, "host rules do not apply this way");
    }

    #[test]
    fn host_to_guest() {
        let t = tr(&[
            "host:2000:1000:10",
            "squash-host:0:65534:1000",
            "guest:3:4:1",
        ]);
        assert_eq!(t.to_guest(2005), 1005);
        assert_eq!(t.to_guest(0), 65534);
        assert_eq!(t.to_guest(999), 65534);
        assert_eq!(t.to_guest(4000), 4000, "guest rules do not apply this way");
        assert_eq!(t.to_guest(1000), 1000);
    }

    #[test]
    fn map_goes_both_ways_and_the_first_rule_wins() {
        let t = tr(&["map:0:100000:65536", "guest:0:7:1"]);
        assert_eq!(t.to_host(0).unwrap(), 100_000);
        assert_eq!(t.to_host(65535).unwrap(), 165_535);
        assert_eq!(t.to_guest(100_001), 1);
        assert_eq!(t.to_guest(1), 1);
        assert!(tr(&[]).is_identity());
    }
}
