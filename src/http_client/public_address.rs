//! Which addresses the outbound client may reach without an allow-list: public unicast ones only.
//! An IPv4 address carried inside an IPv6 one is unwrapped first and judged as itself, so
//! `::ffff:10.0.0.1`, `64:ff9b::a9fe:a9fe` (NAT64 to 169.254.169.254) or a 6to4 / Teredo address
//! built on a private IPv4 address is refused like the bare address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A block of addresses the guard refuses: first address, prefix length, and what it is.
type Block<A> = (A, u8, &'static str);

/// Every block of the IANA IPv4 Special-Purpose Address Registry (RFC 6890, updated by RFC 8190)
/// whose "Globally Reachable" is False or N/A, plus multicast (its own registry, RFC 5771).
/// Conservative where the registry is fine-grained: all of 192.0.0.0/24 is refused, though
/// 192.0.0.9 and 192.0.0.10 are anycast services; the deprecated 6to4 relay anycast block too.
/// The registry's globally reachable blocks outside these (AS112, AMT) stay public.
const V4_REFUSED: &[Block<Ipv4Addr>] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\" (RFC 791)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private use (RFC 1918)"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space, CGNAT (RFC 6598)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback (RFC 1122)"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link local, cloud metadata (RFC 3927)",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private use (RFC 1918)"),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments (RFC 6890)",
    ),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation TEST-NET-1 (RFC 5737)",
    ),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "deprecated 6to4 relay anycast (RFC 7526)",
    ),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private use (RFC 1918)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation TEST-NET-2 (RFC 5737)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation TEST-NET-3 (RFC 5737)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast (RFC 5771)"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "reserved, and 255.255.255.255 limited broadcast (RFC 1112, RFC 919)",
    ),
];

/// Every block of the IANA IPv6 Special-Purpose Address Registry (RFC 6890, updated by RFC 8190)
/// whose "Globally Reachable" is False or N/A, and the IPv6 Address Space registry's blocks that
/// are not global unicast. Only 2000::/3 is global unicast (RFC 4291 §2.4), and `is_public`
/// refuses everything outside it whatever this table says; the blocks outside it are listed so
/// that the whole registry reads in one place. Conservative: all of 2001::/23 is refused (Teredo,
/// 2001::/32, is unwrapped before this table is consulted), though a few anycast services and
/// ORCHIDv2 inside it are globally reachable.
const V6_REFUSED: &[Block<Ipv6Addr>] = &[
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        128,
        "unspecified (RFC 4291)",
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1),
        128,
        "loopback (RFC 4291)",
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        "IPv4-mapped (RFC 4291), unwrapped first",
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        96,
        "IPv4-compatible, deprecated (RFC 4291), unwrapped first",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        "NAT64 well-known prefix (RFC 6052), unwrapped first",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only (RFC 6666)",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "dummy prefix (RFC 9780)",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments (RFC 2928)",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        "Teredo (RFC 4380), unwrapped first",
    ),
    (
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        "benchmarking (RFC 5180)",
    ),
    (
        Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0),
        28,
        "ORCHID, deprecated (RFC 4843)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation (RFC 3849)",
    ),
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        "6to4 (RFC 3056), unwrapped first",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation (RFC 9637)",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "SRv6 SIDs (RFC 9602)",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (RFC 4193)",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "link local (RFC 4291)",
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "site local, deprecated (RFC 3879)",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "multicast (RFC 4291)",
    ),
];

fn in_block_v4(ip: Ipv4Addr, (first, len, _): &Block<Ipv4Addr>) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(*first) & mask
}

fn in_block_v6(ip: Ipv6Addr, (first, len, _): &Block<Ipv6Addr>) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(*first) & mask
}

/// Where an IPv6 address carries IPv4 addresses that traffic to it ends up at.
enum Carried {
    /// Not a wrapper: judge the IPv6 address itself.
    Nothing,
    /// Mapped, compatible, NAT64 or 6to4: the one IPv4 address.
    One(Ipv4Addr),
    /// Teredo: the server's address and the client's (RFC 4380 §4: the client's is stored
    /// with every bit inverted).
    Teredo { server: Ipv4Addr, client: Ipv4Addr },
}

fn carried(ip: Ipv6Addr) -> Carried {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    let s = ip.segments();
    if bits >> 32 == 0xffff || (bits >> 32 == 0 && bits > 1) {
        // ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) and ::a.b.c.d (§2.5.5.1; `::` and `::1` are not).
        Carried::One(low32)
    } else if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        // 64:ff9b::/96, RFC 6052 §2.1: the well-known prefix is only ever /96.
        Carried::One(low32)
    } else if s[0] == 0x2002 {
        // 2002:AABB:CCDD::/48, RFC 3056 §2.
        Carried::One(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])))
    } else if s[0] == 0x2001 && s[1] == 0 {
        Carried::Teredo {
            server: Ipv4Addr::from((u32::from(s[2]) << 16) | u32::from(s[3])),
            client: Ipv4Addr::from(!(bits as u32)),
        }
    } else {
        Carried::Nothing
    }
}

/// True when `ip` is a public unicast address: outside every refused block, with any IPv4
/// address it carries judged the same way.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !V4_REFUSED.iter().any(|b| in_block_v4(v4, b)),
        IpAddr::V6(v6) => match carried(v6) {
            Carried::One(v4) => is_public(IpAddr::V4(v4)),
            Carried::Teredo { server, client } => {
                is_public(IpAddr::V4(server)) && is_public(IpAddr::V4(client))
            }
            Carried::Nothing => {
                let global_unicast = u128::from(v6) >> 125 == 0b001;
                global_unicast && !V6_REFUSED.iter().any(|b| in_block_v6(v6, b))
            }
        },
    }
}

/// True when `ip` reaches this host's own loopback interface: 127.0.0.0/8, `::1`, or 127/8 written
/// IPv4-mapped (a dual-stack socket connects to it over IPv4). The other wrappers are not: NAT64,
/// 6to4 and Teredo traffic goes to a translator or relay elsewhere, whose own loopback that would
/// be, so they stay refused even where loopback is allowed.
pub fn is_host_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4_last((first, len, _): &Block<Ipv4Addr>) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(*first) | u32::MAX.checked_shr(u32::from(*len)).unwrap_or(0))
    }

    fn v6_last((first, len, _): &Block<Ipv6Addr>) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(*first) | u128::MAX.checked_shr(u32::from(*len)).unwrap_or(0))
    }

    #[test]
    fn the_first_and_last_address_of_every_listed_ipv4_block_is_refused() {
        for block in V4_REFUSED {
            for ip in [block.0, v4_last(block)] {
                assert!(!is_public(IpAddr::V4(ip)), "{ip} ({})", block.2);
            }
        }
    }

    #[test]
    fn the_first_and_last_address_of_every_listed_ipv6_block_is_refused() {
        for block in V6_REFUSED {
            for ip in [block.0, v6_last(block)] {
                // A wrapper's ends carry 0.0.0.0 and 255.255.255.255 (or, for Teredo, a client of
                // 255.255.255.255 / 0.0.0.0): refused through the unwrapped address.
                assert!(!is_public(IpAddr::V6(ip)), "{ip} ({})", block.2);
            }
        }
    }

    /// Written out by hand rather than derived from the tables, so that a wrong table entry
    /// (a typo in a prefix length) fails here.
    #[test]
    fn special_purpose_blocks_are_refused_and_their_neighbours_are_public() {
        let cases: &[(&str, bool)] = &[
            // IPv4: each block's ends and the addresses just outside.
            ("0.0.0.0", false),
            ("0.255.255.255", false),
            ("1.0.0.0", true),
            ("9.255.255.255", true),
            ("10.0.0.0", false),
            ("10.255.255.255", false),
            ("11.0.0.0", true),
            ("100.63.255.255", true),
            ("100.64.0.0", false),
            ("100.127.255.255", false),
            ("100.128.0.0", true),
            ("126.255.255.255", true),
            ("127.0.0.0", false),
            ("127.255.255.255", false),
            ("128.0.0.0", true),
            ("169.253.255.255", true),
            ("169.254.0.0", false),
            ("169.254.169.254", false),
            ("169.254.255.255", false),
            ("169.255.0.0", true),
            ("172.15.255.255", true),
            ("172.16.0.0", false),
            ("172.31.255.255", false),
            ("172.32.0.0", true),
            ("191.255.255.255", true),
            ("192.0.0.0", false),
            ("192.0.0.9", false),
            ("192.0.0.170", false),
            ("192.0.0.255", false),
            ("192.0.1.0", true),
            ("192.0.2.0", false),
            ("192.0.2.255", false),
            ("192.0.3.0", true),
            ("192.31.196.1", true),
            ("192.52.193.1", true),
            ("192.88.98.255", true),
            ("192.88.99.0", false),
            ("192.88.99.255", false),
            ("192.88.100.0", true),
            ("192.167.255.255", true),
            ("192.168.0.0", false),
            ("192.168.255.255", false),
            ("192.169.0.0", true),
            ("192.175.48.1", true),
            ("198.17.255.255", true),
            ("198.18.0.0", false),
            ("198.19.255.255", false),
            ("198.20.0.0", true),
            ("198.51.99.255", true),
            ("198.51.100.0", false),
            ("198.51.100.255", false),
            ("198.51.101.0", true),
            ("203.0.112.255", true),
            ("203.0.113.0", false),
            ("203.0.113.255", false),
            ("203.0.114.0", true),
            ("223.255.255.255", true),
            ("224.0.0.0", false),
            ("239.255.255.255", false),
            ("240.0.0.0", false),
            ("255.255.255.254", false),
            ("255.255.255.255", false),
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            // IPv6 outside 2000::/3, the one global unicast block.
            ("::", false),
            ("::1", false),
            ("::2", false),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("4000::", false),
            ("64:ff9b:1::", false),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", false),
            ("64:ff9b:1::808:808", false),
            ("100::", false),
            ("100::ffff:ffff:ffff:ffff", false),
            ("100:0:0:1::", false),
            ("5f00::", false),
            ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fc00::", false),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fe80::", false),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fec0::", false),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("ff02::1", false),
            // IPv6 inside 2000::/3.
            ("2000::", true),
            ("2001::", false),
            ("2001:1::1", false),
            ("2001:2::", false),
            ("2001:2:0:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:10::", false),
            ("2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:200::", true),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db8::", false),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db9::", true),
            ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2003::", true),
            ("2606:4700::1111", true),
            ("2620:4f:8000::1", true),
            ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("3fff::", false),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("3fff:1000::", true),
            ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            // Wrappers, judged by what they carry.
            ("::ffff:10.0.0.1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("::10.0.0.1", false),
            ("::127.0.0.1", false),
            ("::8.8.8.8", true),
            ("64:ff9b::169.254.169.254", false),
            ("64:ff9b::10.0.0.1", false),
            ("64:ff9b::8.8.8.8", true),
            ("2002:a00:1::", false),
            ("2002:a9fe:a9fe::1", false),
            ("2002:808:808::1", true),
            // Teredo: server 65.54.227.120, client 10.0.0.1 stored inverted (f5ff:fffe).
            ("2001:0:4136:e378:8000:63bf:f5ff:fffe", false),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", true),
            // A public client behind a private Teredo server is refused too.
            ("2001:0:a00:1:8000:63bf:f7f7:f7f7", false),
        ];
        for (ip, public) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(is_public(parsed), *public, "{ip}");
        }
    }

    #[test]
    fn loopback_counts_as_this_host_only_bare_or_ipv4_mapped() {
        for ip in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(is_host_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "::127.0.0.1",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "10.0.0.1",
            "::",
        ] {
            assert!(!is_host_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    fn wrappers(v4: Ipv4Addr) -> Vec<(&'static str, Ipv6Addr)> {
        let n = u128::from(u32::from(v4));
        let public_teredo_server = u128::from(u32::from(Ipv4Addr::new(65, 54, 227, 120)));
        let public_teredo_client = u128::from(!u32::from(Ipv4Addr::new(8, 8, 8, 8)));
        vec![
            ("mapped", Ipv6Addr::from(0xffff_0000_0000 | n)),
            ("nat64", Ipv6Addr::from(0x0064_ff9b_u128 << 96 | n)),
            ("6to4", Ipv6Addr::from(0x2002_u128 << 112 | n << 80 | 1)),
            (
                "teredo client",
                Ipv6Addr::from(
                    0x2001_0000_u128 << 96 | public_teredo_server << 64 | (!n & 0xffff_ffff),
                ),
            ),
            (
                "teredo server",
                Ipv6Addr::from(0x2001_0000_u128 << 96 | n << 64 | public_teredo_client),
            ),
        ]
    }

    proptest! {
        #[test]
        fn an_ipv4_address_in_an_ipv6_wrapper_is_judged_as_itself(raw in any::<u32>()) {
            let v4 = Ipv4Addr::from(raw);
            let bare = is_public(IpAddr::V4(v4));
            for (name, v6) in wrappers(v4) {
                prop_assert_eq!(is_public(IpAddr::V6(v6)), bare, "{} {} as {}", name, v4, v6);
            }
            // IPv4-compatible: `::` and `::1` are the IPv6 unspecified and loopback addresses, not
            // 0.0.0.0 and 0.0.0.1; both are refused either way.
            prop_assert_eq!(
                is_public(IpAddr::V6(Ipv6Addr::from(u128::from(raw)))),
                bare,
                "compatible {}", v4
            );
            // The local-use NAT64 prefix is refused whatever it carries (RFC 8215).
            let local = Ipv6Addr::from(0x0064_ff9b_0001_u128 << 80 | u128::from(raw));
            prop_assert!(!is_public(IpAddr::V6(local)));
        }

        #[test]
        fn an_ipv4_mapped_address_is_loopback_exactly_when_the_bare_address_is(raw in any::<u32>()) {
            let v4 = Ipv4Addr::from(raw);
            prop_assert_eq!(
                is_host_loopback(IpAddr::V6(v4.to_ipv6_mapped())),
                is_host_loopback(IpAddr::V4(v4))
            );
        }

        #[test]
        fn no_ipv6_address_outside_global_unicast_is_public(raw in any::<u128>()) {
            let ip = Ipv6Addr::from(raw);
            if raw >> 125 != 0b001 && matches!(carried(ip), Carried::Nothing) {
                prop_assert!(!is_public(IpAddr::V6(ip)), "{}", ip);
            }
        }
    }
}
