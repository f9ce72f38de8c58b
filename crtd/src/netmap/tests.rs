//! The network map from plain data: `/proc/net` lines as the kernel writes
//! them, sockets paired into edges, traced sends, the per-scope memory, and
//! a synthetic `/proc` tree read the way a real one is.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::symlink;
use std::path::Path;

use crt_tracer::record::{decode, RecordBuilder, KIND_SYSCALL};
use crt_tracer::syscalls::{self, NATIVE_AUDIT_ARCH};

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn c(key: &str) -> Endpoint {
    Endpoint::Container(key.into())
}

fn a(addr: &str) -> Endpoint {
    Endpoint::Address(ip(addr))
}

fn edge(proto: Proto, from: Endpoint, to: Endpoint, port: u16) -> EdgeKey {
    EdgeKey {
        proto,
        from,
        to,
        port,
    }
}

// Lines as a little-endian kernel writes them (x86_64).
const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 640 1 000000007599cfa3 100 0 0 10 0
   1: 0200E70A:A4B2 0100E70A:1F90 01 00000000:00000000 02:00000A3B 00000000     0        0 81234 2 00000000a1b2c3d4 20 4 30 10 -1
   2: 0100007F:8CA0 0100007F:0CEA 06 00000000:00000000 03:000016D2 00000000     0        0 0 3 00000000deadbeef
";

const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100E70A:1F90 0000000000000000FFFF00000200E70A:A4B2 01 00000000:00000000 00:00000000 00000000     0        0 22002 1 0000000000000000 20 4 30 10 -1
   2: 000080FE00000000FF00FC00010000FE:01BB B80D012000000000000000001A000000:C350 01 00000000:00000000 00:00000000 00000000  1000        0 22003 1 0000000000000000 20 4 30 10 -1
";

const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  371: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 30001 2 0000000000000000 0
  400: 0200E70A:D431 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 30002 2 0000000000000000 0
";

#[test]
fn ipv4_tcp_lines_give_listening_and_established_sockets() {
    let s = parse_net_table(Proto::Tcp, TCP);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(s[0].local, sa("0.0.0.0:8080"));
    assert!(s[0].listening() && !s[0].connected());
    assert_eq!(s[0].inode, 640);
    assert_eq!(s[1].local, sa("10.231.0.2:42162"));
    assert_eq!(s[1].remote, sa("10.231.0.1:8080"));
    assert!(s[1].connected() && !s[1].listening());
    assert_eq!(s[1].inode, 81234);
    // TIME_WAIT: neither, and held by no file.
    assert!(!s[2].connected() && !s[2].listening());
    assert_eq!(s[2].inode, 0);
}

#[test]
fn ipv6_tcp_lines_are_read_word_by_word_and_ipv4_mapped_become_ipv4() {
    let s = parse_net_table(Proto::Tcp, TCP6);
    assert_eq!(s[0].local, sa("[::1]:22"));
    assert!(s[0].listening());
    assert_eq!(s[1].local, sa("10.231.0.1:8080"));
    assert_eq!(s[1].remote, sa("10.231.0.2:42162"));
    assert_eq!(s[2].local, sa("[fe80::fc:ff:fe00:1]:443"));
    assert_eq!(s[2].remote, sa("[2001:db8::1a]:50000"));
    assert!(s[2].connected());
}

#[test]
fn udp_lines_tell_bound_sockets_from_connected_ones() {
    let s = parse_net_table(Proto::Udp, UDP);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].local, sa("0.0.0.0:53"));
    assert!(s[0].listening() && !s[0].connected());
    assert_eq!(s[1].remote, sa("8.8.8.8:53"));
    assert!(s[1].connected() && !s[1].listening());
}

#[test]
fn lines_that_are_not_sockets_are_left_out() {
    assert!(parse_net_table(
        Proto::Tcp,
        "garbage\n 0: zz:1 00000000:0000 0A a b c d e f\n"
    )
    .is_empty());
    assert!(parse_net_table(Proto::Tcp, "").is_empty());
}

#[test]
fn fib_trie_gives_the_host_local_addresses_once_each() {
    let text = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 10.231.0.0/24 2 0 2
        +-- 10.231.0.0/30 2 0 2
           |-- 10.231.0.0
              /24 link UNICAST
           |-- 10.231.0.1
              /32 host LOCAL
        |-- 10.231.0.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 10.231.0.0/24 2 0 2
           |-- 10.231.0.1
              /32 host LOCAL
";
    assert_eq!(
        parse_fib_trie_local(text),
        vec![ip("127.0.0.1"), ip("10.231.0.1")]
    );
}

#[test]
fn if_inet6_gives_every_address_in_network_order() {
    let text = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
fd000000000000000000000000000002 04 40 00 82     eth0
";
    assert_eq!(
        parse_if_inet6(text),
        vec![ip("fe80::fc:ff:fe00:1"), ip("::1"), ip("fd00::2")]
    );
}

fn conn(owner: &str, netns: u64, proto: Proto, local: &str, remote: &str) -> OwnedSocket {
    OwnedSocket {
        owner: owner.into(),
        netns,
        socket: Socket {
            proto,
            local: sa(local),
            remote: sa(remote),
            state: 0x01,
            inode: 1,
        },
    }
}

fn listeners(list: &[(u64, Proto, u16, &str)]) -> Listeners {
    let mut l = Listeners::new();
    for &(ns, proto, port, owner) in list {
        l.entry((ns, proto, port))
            .or_default()
            .insert(owner.to_string());
    }
    l
}

#[test]
fn two_containers_sockets_pair_into_one_edge_from_client_to_server() {
    let sockets = [
        conn(
            "a/server",
            1,
            Proto::Tcp,
            "10.231.0.1:8080",
            "10.231.0.2:42162",
        ),
        conn(
            "a/client",
            2,
            Proto::Tcp,
            "10.231.0.2:42162",
            "10.231.0.1:8080",
        ),
        conn(
            "a/server",
            1,
            Proto::Tcp,
            "10.231.0.1:8080",
            "10.231.0.2:42164",
        ),
        conn(
            "a/client",
            2,
            Proto::Tcp,
            "10.231.0.2:42164",
            "10.231.0.1:8080",
        ),
    ];
    let edges = pair_sockets(&sockets, &listeners(&[(1, Proto::Tcp, 8080, "a/server")]));
    assert_eq!(
        edges,
        BTreeMap::from([(edge(Proto::Tcp, c("a/client"), c("a/server"), 8080), 2)])
    );
}

#[test]
fn a_listening_port_makes_the_server_even_when_it_is_the_higher_port() {
    // The client connects from port 80 to a server listening on 9000.
    let sockets = [
        conn("a/x", 1, Proto::Tcp, "10.0.0.1:9000", "10.0.0.2:80"),
        conn("a/y", 2, Proto::Tcp, "10.0.0.2:80", "10.0.0.1:9000"),
    ];
    let edges = pair_sockets(&sockets, &listeners(&[(1, Proto::Tcp, 9000, "a/x")]));
    assert_eq!(
        edges.keys().collect::<Vec<_>>(),
        [&edge(Proto::Tcp, c("a/y"), c("a/x"), 9000)]
    );
    // Nobody listens (a listener since closed): the lower port serves.
    let edges = pair_sockets(&sockets, &Listeners::new());
    assert_eq!(
        edges.keys().collect::<Vec<_>>(),
        [&edge(Proto::Tcp, c("a/x"), c("a/y"), 80)]
    );
}

#[test]
fn loopback_connections_pair_inside_one_namespace_only() {
    // Two pods (netns 1 and 2) with the same loopback tuple: each pairs
    // within its own namespace, between the containers of that pod.
    let sockets = [
        conn("a/web", 1, Proto::Tcp, "127.0.0.1:40000", "127.0.0.1:6379"),
        conn(
            "a/cache",
            1,
            Proto::Tcp,
            "127.0.0.1:6379",
            "127.0.0.1:40000",
        ),
        conn("a/web2", 2, Proto::Tcp, "127.0.0.1:40000", "127.0.0.1:6379"),
        conn(
            "a/cache2",
            2,
            Proto::Tcp,
            "127.0.0.1:6379",
            "127.0.0.1:40000",
        ),
    ];
    let l = listeners(&[
        (1, Proto::Tcp, 6379, "a/cache"),
        (2, Proto::Tcp, 6379, "a/cache2"),
    ]);
    let edges = pair_sockets(&sockets, &l);
    assert_eq!(
        edges,
        BTreeMap::from([
            (edge(Proto::Tcp, c("a/web"), c("a/cache"), 6379), 1),
            (edge(Proto::Tcp, c("a/web2"), c("a/cache2"), 6379), 1),
        ])
    );
}

#[test]
fn sockets_without_a_peer_in_scope_talk_with_bare_addresses_grouped() {
    let sockets = [
        // Out: two connections to one server, one to another port.
        conn("a/app", 1, Proto::Tcp, "10.0.0.5:50001", "10.232.0.1:8080"),
        conn("a/app", 1, Proto::Tcp, "10.0.0.5:50002", "10.232.0.1:8080"),
        conn("a/app", 1, Proto::Tcp, "10.0.0.5:50003", "10.232.0.1:9090"),
        // In: two clients of one address, from different ports: one edge.
        conn("a/app", 1, Proto::Tcp, "10.0.0.5:443", "192.0.2.9:61000"),
        conn("a/app", 1, Proto::Tcp, "10.0.0.5:443", "192.0.2.9:61001"),
        // A connected UDP socket.
        conn("a/app", 1, Proto::Udp, "10.0.0.5:54321", "8.8.8.8:53"),
    ];
    let edges = pair_sockets(&sockets, &listeners(&[(1, Proto::Tcp, 443, "a/app")]));
    assert_eq!(
        edges,
        BTreeMap::from([
            (edge(Proto::Tcp, c("a/app"), a("10.232.0.1"), 8080), 2),
            (edge(Proto::Tcp, c("a/app"), a("10.232.0.1"), 9090), 1),
            (edge(Proto::Tcp, a("192.0.2.9"), c("a/app"), 443), 2),
            (edge(Proto::Udp, c("a/app"), a("8.8.8.8"), 53), 1),
        ])
    );
}

#[test]
fn an_ipv4_mapped_socket_pairs_with_its_ipv4_peer() {
    let s6 = parse_net_table(Proto::Tcp, TCP6);
    let s4 = parse_net_table(Proto::Tcp, TCP);
    let sockets = [
        OwnedSocket {
            owner: "a/server".into(),
            netns: 1,
            socket: s6[1].clone(),
        },
        OwnedSocket {
            owner: "a/client".into(),
            netns: 2,
            socket: s4[1].clone(),
        },
    ];
    let edges = pair_sockets(&sockets, &listeners(&[(1, Proto::Tcp, 8080, "a/server")]));
    assert_eq!(
        edges,
        BTreeMap::from([(edge(Proto::Tcp, c("a/client"), c("a/server"), 8080), 1)])
    );
    assert_eq!(
        edges.keys().next().unwrap().id(),
        "tcp|c:a/client|c:a/server|8080"
    );
}

#[test]
fn a_tuple_two_sockets_claim_pairs_with_neither() {
    // Two isolated networks reuse 10.0.0.1: which one the client reached
    // cannot be told, so it talks with the address.
    let sockets = [
        conn("a/client", 3, Proto::Tcp, "10.0.0.2:40000", "10.0.0.1:80"),
        conn("a/s1", 1, Proto::Tcp, "10.0.0.1:80", "10.0.0.2:40000"),
        conn("a/s2", 2, Proto::Tcp, "10.0.0.1:80", "10.0.0.2:40000"),
    ];
    let l = listeners(&[(1, Proto::Tcp, 80, "a/s1"), (2, Proto::Tcp, 80, "a/s2")]);
    let edges = pair_sockets(&sockets, &l);
    assert_eq!(
        edges.get(&edge(Proto::Tcp, c("a/client"), a("10.0.0.1"), 80)),
        Some(&1),
        "{edges:?}"
    );
    // Seen from the servers' side, the doubled tuple pairs with nobody either.
    assert_eq!(
        edges.get(&edge(Proto::Tcp, a("10.0.0.2"), c("a/s1"), 80)),
        Some(&1),
        "{edges:?}"
    );
    assert_eq!(edges.len(), 3, "{edges:?}");
}

fn observed_two_netns() -> Observed {
    let mut o = Observed::default();
    o.netns_of.insert("a/client".into(), 2);
    o.netns_of.insert("a/server".into(), 1);
    o.netns_of.insert("a/side".into(), 2);
    o.local_addrs.insert(ip("10.231.0.1"), BTreeSet::from([1]));
    o.local_addrs.insert(ip("10.231.0.2"), BTreeSet::from([2]));
    o.listeners = listeners(&[
        (1, Proto::Tcp, 8080, "a/server"),
        (1, Proto::Udp, 5353, "a/server"),
        (2, Proto::Tcp, 9000, "a/side"),
    ]);
    o
}

fn send(owner: &str, dest: &str, protos: &'static [Proto]) -> TracedSend {
    TracedSend {
        owner: owner.into(),
        dest: sa(dest),
        at_ns: 1,
        protos,
    }
}

const CONNECT: &[Proto] = &[Proto::Tcp, Proto::Udp];
const SENDTO: &[Proto] = &[Proto::Udp];

#[test]
fn a_traced_connect_to_a_scope_containers_address_is_an_edge_to_it() {
    let o = observed_two_netns();
    let none = BTreeMap::new();
    assert_eq!(
        traced_edge(&send("a/client", "10.231.0.1:8080", CONNECT), &o, &none),
        edge(Proto::Tcp, c("a/client"), c("a/server"), 8080)
    );
    assert_eq!(
        traced_edge(&send("a/client", "10.231.0.1:5353", SENDTO), &o, &none),
        edge(Proto::Udp, c("a/client"), c("a/server"), 5353)
    );
    // Nobody listens there: the address.
    assert_eq!(
        traced_edge(&send("a/client", "10.231.0.1:22", CONNECT), &o, &none),
        edge(Proto::Tcp, c("a/client"), a("10.231.0.1"), 22)
    );
    // Loopback is the sender's own namespace: its pod mate, not the server.
    assert_eq!(
        traced_edge(&send("a/client", "127.0.0.1:9000", CONNECT), &o, &none),
        edge(Proto::Tcp, c("a/client"), c("a/side"), 9000)
    );
    assert_eq!(
        traced_edge(&send("a/client", "127.0.0.1:8080", CONNECT), &o, &none),
        edge(Proto::Tcp, c("a/client"), a("127.0.0.1"), 8080)
    );
}

#[test]
fn a_traced_connect_from_before_a_container_was_created_never_names_it() {
    // The server took the address of an earlier one at ns 100.
    let mut o = observed_two_netns();
    o.created_ns.insert("a/server".into(), 100);
    let mut earlier = send("a/client", "10.231.0.1:8080", CONNECT);
    earlier.at_ns = 99;
    assert_eq!(
        traced_edge(&earlier, &o, &BTreeMap::new()),
        edge(Proto::Tcp, c("a/client"), a("10.231.0.1"), 8080)
    );
    earlier.at_ns = 100;
    assert_eq!(
        traced_edge(&earlier, &o, &BTreeMap::new()),
        edge(Proto::Tcp, c("a/client"), c("a/server"), 8080)
    );
}

#[test]
fn a_traced_connect_counts_as_udp_where_the_sockets_show_udp_only() {
    let o = observed_two_netns();
    let sockets = BTreeMap::from([(edge(Proto::Udp, c("a/client"), a("8.8.8.8"), 53), 1)]);
    assert_eq!(
        traced_edge(&send("a/client", "8.8.8.8:53", CONNECT), &o, &sockets),
        edge(Proto::Udp, c("a/client"), a("8.8.8.8"), 53)
    );
    assert_eq!(
        traced_edge(&send("a/client", "8.8.4.4:53", CONNECT), &o, &sockets),
        edge(Proto::Tcp, c("a/client"), a("8.8.4.4"), 53)
    );
}

fn syscall_record(name: &str, arg: u8, sockaddr: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let nr = syscalls::by_name(name).unwrap().nr;
    let mut b = RecordBuilder::begin(
        &mut buf,
        KIND_SYSCALL,
        7_000,
        42,
        NATIVE_AUDIT_ARCH,
        nr,
        &[3, 0, 16, 0, 0, 16],
    );
    b.bytes(arg, sockaddr, false);
    b.finish();
    buf
}

fn sockaddr_in(port: u16, addr: [u8; 4]) -> Vec<u8> {
    let mut b = 2u16.to_le_bytes().to_vec();
    b.extend(port.to_be_bytes());
    b.extend(addr);
    b.extend([0; 8]);
    b
}

#[test]
fn traced_connects_and_sendtos_give_their_destination() {
    let rec = syscall_record("connect", 1, &sockaddr_in(8080, [10, 231, 0, 1]));
    let t = traced_send("a/client", &decode(&rec).unwrap().0).unwrap();
    assert_eq!(t.dest, sa("10.231.0.1:8080"));
    assert_eq!(t.at_ns, 7_000);
    assert_eq!(t.protos, CONNECT);

    let rec = syscall_record("sendto", 4, &sockaddr_in(53, [8, 8, 8, 8]));
    let t = traced_send("a/client", &decode(&rec).unwrap().0).unwrap();
    assert_eq!(t.dest, sa("8.8.8.8:53"));
    assert_eq!(t.protos, SENDTO);

    // AF_INET6, IPv4-mapped.
    let mut six = 10u16.to_le_bytes().to_vec();
    six.extend(443u16.to_be_bytes());
    six.extend([0; 4]);
    six.extend(
        ip("::ffff:192.0.2.7")
            .to_string()
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    six.extend([0; 4]);
    let rec = syscall_record("connect", 1, &six);
    let t = traced_send("a/client", &decode(&rec).unwrap().0).unwrap();
    assert_eq!(t.dest, sa("192.0.2.7:443"));

    // A unix socket, an openat, a truncated address: nothing.
    let mut unix = 1u16.to_le_bytes().to_vec();
    unix.extend(b"/run/x.sock\0");
    let rec = syscall_record("connect", 1, &unix);
    assert!(traced_send("a/client", &decode(&rec).unwrap().0).is_none());
    let rec = syscall_record("openat", 1, b"/etc/passwd");
    assert!(traced_send("a/client", &decode(&rec).unwrap().0).is_none());
    let rec = syscall_record("connect", 1, &sockaddr_in(80, [1, 2, 3, 4])[..6]);
    assert!(traced_send("a/client", &decode(&rec).unwrap().0).is_none());
}

const SEC: u64 = 1_000_000_000;

/// A deadline no test reaches.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

fn tenant(t: &str) -> Scope {
    Scope::Tenant(t.into())
}

#[test]
fn a_closed_connection_stays_inactive_with_its_age_until_forgotten() {
    let m = EdgeMemory::default();
    let e = edge(Proto::Tcp, c("a/client"), c("a/server"), 8080);
    let t0 = 1_000 * SEC;
    let seen = m.update(
        &tenant("a"),
        t0,
        &BTreeMap::from([(e.clone(), 3)]),
        &BTreeMap::new(),
        |_| true,
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].connections, 3);
    assert_eq!(seen[0].via, ["socket"]);
    assert_eq!(seen[0].json()["active"], true);

    // Closed 90.5 s later, traced meanwhile.
    let t1 = t0 + 90 * SEC + SEC / 2;
    let seen = m.update(
        &tenant("a"),
        t1,
        &BTreeMap::new(),
        &BTreeMap::from([(e.clone(), t0 - SEC)]),
        |_| true,
    );
    assert_eq!(seen[0].connections, 0);
    assert_eq!(seen[0].via, ["socket", "trace"]);
    let j = seen[0].json();
    assert_eq!(j["active"], false);
    assert_eq!(j["age_s"], 90.5);
    assert_eq!(j["last_seen"], rfc3339_utc(t0));
    assert_eq!(j["id"], "tcp|c:a/client|c:a/server|8080");
    assert_eq!(j["from"], json!({"container": "a/client"}));

    // Past the TTL: gone.
    let t2 = t0 + EDGE_TTL.as_nanos() as u64 + SEC;
    assert!(m
        .update(&tenant("a"), t2, &BTreeMap::new(), &BTreeMap::new(), |_| {
            true
        })
        .is_empty());
}

#[test]
fn each_scope_sees_only_the_edges_its_own_requests_found() {
    let m = EdgeMemory::default();
    let e = edge(Proto::Tcp, c("b/secret"), a("10.0.0.1"), 80);
    m.update(
        &tenant("b"),
        SEC,
        &BTreeMap::from([(e, 1)]),
        &BTreeMap::new(),
        |_| true,
    );
    assert!(m
        .update(
            &tenant("a"),
            SEC,
            &BTreeMap::new(),
            &BTreeMap::new(),
            |_| true
        )
        .is_empty());
    assert!(m
        .update(
            &Scope::Root,
            SEC,
            &BTreeMap::new(),
            &BTreeMap::new(),
            |_| true
        )
        .is_empty());
    assert_eq!(
        m.update(
            &tenant("b"),
            SEC,
            &BTreeMap::new(),
            &BTreeMap::new(),
            |_| true
        )
        .len(),
        1
    );
}

#[test]
fn an_edge_naming_a_container_the_scope_no_longer_sees_is_forgotten() {
    let m = EdgeMemory::default();
    let e = edge(Proto::Tcp, c("a/x"), c("a/y"), 80);
    m.update(
        &tenant("a"),
        SEC,
        &BTreeMap::from([(e, 1)]),
        &BTreeMap::new(),
        |_| true,
    );
    let seen = m.update(
        &tenant("a"),
        2 * SEC,
        &BTreeMap::new(),
        &BTreeMap::new(),
        |ep| ep != &c("a/y"),
    );
    assert!(seen.is_empty());
    // And it does not come back once the container is known again.
    assert!(m
        .update(
            &tenant("a"),
            3 * SEC,
            &BTreeMap::new(),
            &BTreeMap::new(),
            |_| true
        )
        .is_empty());
}

#[test]
fn a_scope_remembers_at_most_its_bound_forgetting_the_longest_unseen() {
    let m = EdgeMemory::default();
    let old: BTreeMap<EdgeKey, u64> = (0..100u16)
        .map(|p| (edge(Proto::Udp, c("a/x"), a("10.9.9.9"), p + 1), SEC))
        .collect();
    m.update(&tenant("a"), 2 * SEC, &BTreeMap::new(), &old, |_| true);
    let fresh: BTreeMap<EdgeKey, u32> = (0..EDGES_PER_SCOPE as u32)
        .map(|i| {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            (edge(Proto::Tcp, c("a/x"), Endpoint::Address(addr), 80), 1)
        })
        .collect();
    let seen = m.update(&tenant("a"), 3 * SEC, &fresh, &BTreeMap::new(), |_| true);
    assert_eq!(seen.len(), EDGES_PER_SCOPE);
    assert!(
        seen.iter().all(|e| e.key.proto == Proto::Tcp),
        "an old edge outlived a fresh one"
    );
}

/// One process of a synthetic `/proc`: its network namespace, the files of
/// `net/` (when given) and its socket fds.
fn fake_process(
    proc: &Path,
    pid: i32,
    netns: u64,
    net: Option<(&str, &str)>,
    socket_inodes: &[u64],
) {
    let dir = proc.join(pid.to_string());
    fs::create_dir_all(dir.join("ns")).unwrap();
    fs::create_dir_all(dir.join("fd")).unwrap();
    fs::create_dir_all(dir.join("net")).unwrap();
    symlink(format!("net:[{netns}]"), dir.join("ns/net")).unwrap();
    if let Some((tcp, fib)) = net {
        fs::write(dir.join("net/tcp"), tcp).unwrap();
        fs::write(dir.join("net/fib_trie"), fib).unwrap();
    }
    symlink("/dev/null", dir.join("fd/0")).unwrap();
    symlink("pipe:[77]", dir.join("fd/1")).unwrap();
    for (i, inode) in socket_inodes.iter().enumerate() {
        symlink(
            format!("socket:[{inode}]"),
            dir.join(format!("fd/{}", i + 3)),
        )
        .unwrap();
    }
}

const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

fn tcp_line(local: &str, remote: &str, state: u8, inode: u64) -> String {
    format!("   0: {local} {remote} {state:02X} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n")
}

fn fib(addr: &str) -> String {
    format!("Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- {addr}\n        /32 host LOCAL\n")
}

#[test]
fn a_pod_namespace_is_read_once_and_its_sockets_go_to_the_containers_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    // Pod netns 500 (10.231.0.1): "web" listens on 8080 and connects over
    // loopback to "cache" on 6379; a socket of a stranger (inode 9) that
    // nobody of the scope holds is not shown.
    let mut tcp = TCP_HEADER.to_string();
    tcp += &tcp_line("00000000:1F90", "00000000:0000", 0x0A, 1);
    tcp += &tcp_line("0100007F:18EB", "00000000:0000", 0x0A, 2);
    tcp += &tcp_line("0100007F:9C40", "0100007F:18EB", 0x01, 3);
    tcp += &tcp_line("0100007F:18EB", "0100007F:9C40", 0x01, 4);
    tcp += &tcp_line("0100E70A:1F90", "0A00000A:C350", 0x01, 9);
    fake_process(proc, 100, 500, Some((&tcp, &fib("10.231.0.1"))), &[1, 3]);
    fake_process(proc, 101, 500, None, &[]);
    fake_process(proc, 200, 500, None, &[2, 4]);
    let containers = [
        ContainerProcs {
            key: "a/web".into(),
            pids: vec![100, 101],
        },
        ContainerProcs {
            key: "a/cache".into(),
            pids: vec![200],
        },
    ];
    let o = read_proc(proc, &containers, &TableCache::default(), far());
    assert_eq!(o.netns_read, 1);
    assert_eq!(o.netns_of["a/web"], 500);
    assert_eq!(o.netns_of["a/cache"], 500);
    assert_eq!(o.local_addrs[&ip("10.231.0.1")], BTreeSet::from([500]));
    assert_eq!(
        o.listening["a/web"],
        BTreeSet::from([Listening {
            proto: Proto::Tcp,
            address: ip("0.0.0.0"),
            port: 8080
        }])
    );
    assert_eq!(o.listening["a/cache"].iter().next().unwrap().port, 6379);
    let owners: BTreeSet<(String, u64)> = o
        .sockets
        .iter()
        .map(|s| (s.owner.clone(), s.socket.inode))
        .collect();
    assert_eq!(
        owners,
        BTreeSet::from([("a/web".into(), 3), ("a/cache".into(), 4)])
    );
    assert_eq!(
        pair_sockets(&o.sockets, &o.listeners),
        BTreeMap::from([(edge(Proto::Tcp, c("a/web"), c("a/cache"), 6379), 1)])
    );
}

#[test]
fn tables_are_read_only_where_a_socket_is_held_and_not_again_while_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    let mut tcp = TCP_HEADER.to_string();
    tcp += &tcp_line("00000000:1F90", "00000000:0000", 0x0A, 1);
    fake_process(proc, 100, 600, Some((&tcp, &fib("10.1.0.1"))), &[1]);
    // A container holding no socket: its namespace is not read.
    fake_process(proc, 300, 700, Some((&tcp, &fib("10.2.0.1"))), &[]);
    let containers = [
        ContainerProcs {
            key: "a/srv".into(),
            pids: vec![100],
        },
        ContainerProcs {
            key: "a/idle".into(),
            pids: vec![300],
        },
    ];
    let cache = TableCache::default();
    let o = read_proc(proc, &containers, &cache, far());
    assert_eq!((o.netns_read, o.netns_unread), (1, 0));
    assert_eq!(o.listening["a/srv"].len(), 1);
    assert!(!o.local_addrs.contains_key(&ip("10.2.0.1")));

    // A second listener now, held too: fresh tables are not read again.
    tcp += &tcp_line("00000000:0050", "00000000:0000", 0x0A, 2);
    fs::write(proc.join("100/net/tcp"), &tcp).unwrap();
    symlink("socket:[2]", proc.join("100/fd/9")).unwrap();
    let o = read_proc(proc, &containers, &cache, far());
    assert_eq!((o.netns_read, o.netns_unread), (0, 0));
    assert_eq!(o.listening["a/srv"].len(), 1);

    // Out of time with nothing read lately: the namespace is left for later.
    let o = read_proc(proc, &containers, &TableCache::default(), Instant::now());
    assert_eq!((o.netns_read, o.netns_unread), (0, 1));
    assert!(o.listening.is_empty());
}

fn hex4(a: [u8; 4], port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_ne_bytes(a))
}

/// 500 containers, each in a namespace of its own with three processes of
/// 20 fds: each listens on 8080 and keeps a connection to the next one. Not
/// a timed test: it checks every edge is found and prints how long reading
/// and pairing took (`cargo test -p crtd five_hundred -- --nocapture`).
#[test]
fn five_hundred_containers_in_their_own_namespaces_make_a_ring_of_edges() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    let n = 500u32;
    let addr = |i: u32| [10, 240, (i / 250) as u8, (i % 250 + 1) as u8];
    let mut containers = Vec::new();
    for i in 0..n {
        let next = (i + 1) % n;
        let prev = (i + n - 1) % n;
        let base = u64::from(i) * 10 + 1;
        let mut tcp = TCP_HEADER.to_string();
        tcp += &tcp_line("00000000:1F90", "00000000:0000", 0x0A, base);
        // Out to the next one, from 40000 + i.
        tcp += &tcp_line(
            &hex4(addr(i), 40000),
            &hex4(addr(next), 8080),
            0x01,
            base + 1,
        );
        // In from the previous one.
        tcp += &tcp_line(
            &hex4(addr(i), 8080),
            &hex4(addr(prev), 40000),
            0x01,
            base + 2,
        );
        let ip = std::net::Ipv4Addr::from(addr(i)).to_string();
        let pid = 10_000 + i as i32 * 3;
        let mut inodes: Vec<u64> = (base..base + 3).collect();
        inodes.extend((0..17).map(|k| 9_000_000 + u64::from(i) * 100 + k));
        fake_process(
            proc,
            pid,
            1_000 + u64::from(i),
            Some((&tcp, &fib(&ip))),
            &inodes,
        );
        fake_process(proc, pid + 1, 1_000 + u64::from(i), None, &inodes[3..]);
        fake_process(proc, pid + 2, 1_000 + u64::from(i), None, &inodes[3..]);
        containers.push(ContainerProcs {
            key: format!("a/c{i}"),
            pids: vec![pid, pid + 1, pid + 2],
        });
    }
    let started = Instant::now();
    let o = read_proc(proc, &containers, &TableCache::default(), far());
    let edges = pair_sockets(&o.sockets, &o.listeners);
    let took = started.elapsed();
    println!(
        "500 containers: {} namespaces, {} fds, {} edges in {took:?}",
        o.netns_read,
        o.fds_read,
        edges.len()
    );
    assert_eq!(o.netns_read, n as usize);
    assert_eq!(edges.len(), n as usize);
    for i in 0..n {
        let e = edge(
            Proto::Tcp,
            c(&format!("a/c{i}")),
            c(&format!("a/c{}", (i + 1) % n)),
            8080,
        );
        assert_eq!(edges.get(&e), Some(&1), "{e:?}");
    }
}
