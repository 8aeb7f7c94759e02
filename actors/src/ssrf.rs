//! The address policy of deliveries. Every address a URL names or
//! resolves to is classified here, both when the URL is accepted and again at
//! connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Decides whether an address may be connected to.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    /// Networks exempt from the guard, such as `127.0.0.1/32` in tests.
    pub exempt: Vec<IpNet>,
    /// When not empty, the only networks deliveries may reach at all: an
    /// egress allowlist checked before the exemptions.
    pub allowed: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(exempt: Vec<IpNet>) -> Self {
        Self {
            exempt,
            allowed: Vec::new(),
        }
    }

    pub fn with_allowed(mut self, allowed: Vec<IpNet>) -> Self {
        self.allowed = allowed;
        self
    }

    /// Returns why `addr` is blocked, or `None` when it may be connected to.
    /// Exemptions and allowed networks match the address as written or, for
    /// an IPv4-mapped address, the IPv4 host it reaches. NAT64, 6to4 and
    /// IPv4-compatible forms reach other hosts, so those match only as written,
    /// while the block list judges them on their embedded address.
    pub fn check(&self, addr: IpAddr) -> Option<&'static str> {
        let canonical = canonical(addr);
        let mapped = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let in_any = |nets: &[IpNet]| {
            nets.iter()
                .any(|net| net.contains(&addr) || mapped.is_some_and(|v4| net.contains(&v4)))
        };
        if !in_any(&self.exempt)
            && let Some(reason) = blocked_reason(canonical)
        {
            return Some(reason);
        }
        if !self.allowed.is_empty() && !in_any(&self.allowed) {
            return Some(
                "address outside the networks this service may reach (delivery.allowed_networks)",
            );
        }
        None
    }
}

/// Returns the IPv4 address embedded in an IPv6 address (mapped, compatible,
/// NAT64 or 6to4 forms), or the address itself.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4).unwrap_or(addr),
    }
}

fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = v6.segments();
    let octets = v6.octets();
    // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks);
    // :: and ::1 themselves are handled as IPv6.
    if segments[..6] == [0; 6] && (segments[6] != 0 || segments[7] > 1) {
        return Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    // NAT64 well-known prefix 64:ff9b::/96 carries the IPv4 address in the
    // last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    // Local-use 64:ff9b:1::/48 is a /48 prefix, so RFC 6052 puts the IPv4
    // address in octets 6 and 7 and, after the reserved octet 8, 9 and 10.
    if segments[..3] == [0x64, 0xff9b, 1] {
        return Some(Ipv4Addr::new(octets[6], octets[7], octets[9], octets[10]));
    }
    // 6to4 2002:AABB:CCDD::/48 carries the IPv4 address in bits 16..48.
    if segments[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

fn blocked_reason(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(addr: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = addr.octets();
    if addr.is_unspecified() || a == 0 {
        Some("unspecified or 'this network' address (0.0.0.0/8)")
    } else if addr.is_loopback() {
        Some("loopback address (127.0.0.0/8)")
    } else if addr.is_private() {
        Some("private address (RFC 1918)")
    } else if addr.is_link_local() {
        Some("link-local address (169.254.0.0/16, includes cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared CGNAT address (100.64.0.0/10)")
    } else if addr.is_multicast() {
        Some("multicast address (224.0.0.0/4)")
    } else if addr.is_broadcast() || a >= 240 {
        Some("reserved address (240.0.0.0/4)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol assignment (192.0.0.0/24)")
    } else if (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
    {
        Some("documentation address (TEST-NET)")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking address (198.18.0.0/15)")
    } else if a == 192 && b == 88 && c == 99 {
        Some("6to4 relay anycast address (192.88.99.0/24)")
    } else {
        None
    }
}

fn blocked_v6(addr: Ipv6Addr) -> Option<&'static str> {
    let segments = addr.segments();
    if addr.is_unspecified() {
        Some("unspecified address (::)")
    } else if addr.is_loopback() {
        Some("loopback address (::1)")
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Some("unique-local address (fc00::/7)")
    } else if segments[0] & 0xffc0 == 0xfe80 || segments[0] & 0xffc0 == 0xfec0 {
        Some("link-local address (fe80::/10)")
    } else if segments[0] & 0xff00 == 0xff00 {
        Some("multicast address (ff00::/8)")
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        Some("documentation address (2001:db8::/32)")
    } else if segments[0] == 0x2001 && segments[1] < 0x0200 {
        Some("IETF protocol assignment, includes Teredo (2001::/23)")
    } else if segments[0] == 0x0100 && segments[1..4] == [0, 0, 0] {
        Some("discard-only address (100::/64)")
    } else if segments[0] == 0 {
        Some("reserved address (::/16)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(policy: &AddressPolicy, s: &str) -> bool {
        policy.check(s.parse().unwrap()).is_some()
    }

    #[test]
    fn blocks_internal_ranges() {
        let policy = AddressPolicy::default();
        for addr in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(blocked(&policy, addr), "{addr} must be blocked");
        }
    }

    #[test]
    fn allows_public_addresses() {
        let policy = AddressPolicy::default();
        for addr in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!blocked(&policy, addr), "{addr} must be allowed");
        }
    }

    #[test]
    fn allowlist_blocks_everything_else() {
        let policy = AddressPolicy::new(vec!["127.0.0.1/32".parse().unwrap()])
            .with_allowed(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(!blocked(&policy, "127.0.0.1"));
        assert!(blocked(&policy, "127.0.0.2"));
        assert!(blocked(&policy, "8.8.8.8"));
    }

    #[test]
    fn exemption_skips_translated_forms() {
        // Under --dev or a loopback allowlist, these forms must not pass as
        // 127.0.0.1: they reach an IPv6 host, which the block list judges.
        let policy = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()])
            .with_allowed(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(!blocked(&policy, "::ffff:127.0.0.1"));
        for addr in ["64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1"] {
            assert!(blocked(&policy, addr), "{addr} must be blocked");
        }
        let open = AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        for addr in ["64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1"] {
            assert!(blocked(&open, addr), "{addr} must be blocked");
        }
    }

    #[test]
    fn nat64_local_use_embeds_octets_per_rfc_6052() {
        // 64:ff9b:1:7f00:0:100:: carries 127.0.0.1 for a /48 prefix.
        let addr: IpAddr = "64:ff9b:1:7f00:0:100::".parse().unwrap();
        assert_eq!(canonical(addr), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert!(blocked(&AddressPolicy::default(), "64:ff9b:1:7f00:0:100::"));
    }

    #[test]
    fn exemption_covers_only_listed_networks() {
        let policy = AddressPolicy::new(vec!["127.0.0.2/32".parse().unwrap()]);
        assert!(!blocked(&policy, "127.0.0.2"));
        assert!(!blocked(&policy, "::ffff:127.0.0.2"));
        assert!(blocked(&policy, "127.0.0.1"));
        assert!(blocked(&policy, "::1"));
    }
}
