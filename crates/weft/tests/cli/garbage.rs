//! Garbage from the network: random bytes on the TCP and QUIC ports, HTTP
//! on the libp2p port, and a libp2p peer asking for a protocol we do not
//! speak. The node keeps running and answering.

use std::{
    io::{Read, Write},
    net::{TcpStream, UdpSocket},
    time::Duration,
};

use crate::support::{loopback_args, stderr, unique_network, Daemon};

fn port_of(addr: &str, proto: &str) -> u16 {
    let parts: Vec<&str> = addr.split('/').collect();
    let i = parts
        .iter()
        .position(|p| *p == proto)
        .expect("protocol in addr");
    parts[i + 1].parse().expect("port")
}

#[test]
fn garbage_leaves_the_node_running() {
    let tmp = tempfile::tempdir().unwrap();
    let network = unique_network("garbage");
    let a = Daemon::start(&tmp.path().join("a"), &loopback_args(&network));
    let tcp = port_of(&a.addr("tcp"), "tcp");
    let udp = port_of(&a.addr("quic-v1"), "udp");

    // Random bytes, several times, on TCP.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut bytes = vec![0u8; 1 + round * 997];
        for b in bytes.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", tcp)) {
            let _ = s.write_all(&bytes);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut sink = [0u8; 1024];
            let _ = s.read(&mut sink);
        }
    }
    // A wrong protocol: HTTP on the libp2p port.
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", tcp)) {
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut sink = [0u8; 1024];
        let _ = s.read(&mut sink);
    }
    // multistream-select, then a protocol nobody speaks.
    if let Ok(mut s) = TcpStream::connect(("127.0.0.1", tcp)) {
        let mut msg = Vec::new();
        for line in ["/multistream/1.0.0\n", "/bogus/9.9.9\n"] {
            msg.push(line.len() as u8);
            msg.extend_from_slice(line.as_bytes());
        }
        let _ = s.write_all(&msg);
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut sink = [0u8; 1024];
        let _ = s.read(&mut sink);
    }
    // Random datagrams on the QUIC port.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for size in [1usize, 50, 1200, 1500, 9000] {
        let _ = sock.send_to(&vec![0xAB; size], ("127.0.0.1", udp));
    }

    // Still answering the API.
    let out = a.weft(&["id", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // And still accepting real peers on both transports.
    let b = Daemon::start(&tmp.path().join("b"), &loopback_args(&network));
    for transport in ["tcp", "quic-v1"] {
        let out = b.weft(&["dial", &a.addr(transport)]);
        assert!(
            out.status.success(),
            "dial over {transport}: {}",
            stderr(&out)
        );
        let out = b.weft(&["disconnect", &a.peer_id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(crate::support::wait_until(Duration::from_secs(20), || {
            !b.peer_ids().contains(&a.peer_id)
        }));
    }
}
