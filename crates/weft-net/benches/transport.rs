//! Loopback transport benchmark for weft-net. It prints its results and
//! asserts nothing.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p weft-net --bench transport
//! WEFT_BENCH_BYTES=268435456 cargo bench -p weft-net --bench transport   # 256 MiB
//! ```
//!
//! Everything runs in one process on a tokio multi-thread runtime. It binds
//! 127.0.0.1 only, always on port 0. It measures:
//!
//! 1. Connection setup: the time `NetworkHandle::dial` takes to return Ok,
//!    which means connected *and* identified as a peer on our network. This
//!    is measured over QUIC and over TCP+Noise+Yamux, with one unmeasured
//!    warm-up dial and then [`DIAL_ITERATIONS`] dials, each from a fresh
//!    dialer node. Median and p90 are printed.
//! 2. Throughput of one libp2p stream carrying `WEFT_BENCH_BYTES` bytes
//!    (default 1 GiB) between two weft-net nodes, over QUIC and over
//!    TCP+Noise+Yamux. The writer uses 1 MiB writes and the reader a 1 MiB
//!    buffer. Timing runs from the first write to the last byte read.
//! 3. Raw loopback TCP throughput: a plain tokio `TcpStream` pair with the
//!    same byte count and 64 KiB writes. Each libp2p figure is also printed
//!    as a fraction of this baseline.
//!
//! Each pair of nodes listens on one address of the transport under test
//! only. The benchmark checks that the connection really uses it.

use std::{
    error::Error,
    time::{Duration, Instant},
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use weft_net::{
    Config, Identity, Multiaddr, Network, NetworkHandle, PeerId, Registry, StreamProtocol,
};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/bench/1");
/// Measured dials per transport (after one warm-up dial).
const DIAL_ITERATIONS: usize = 20;
/// Bytes per throughput run unless `WEFT_BENCH_BYTES` says otherwise.
const DEFAULT_BYTES: u64 = 1 << 30;
/// Write size on libp2p streams.
const LIBP2P_WRITE: usize = 1 << 20;
/// Write size on the raw TCP baseline.
const RAW_WRITE: usize = 64 << 10;
/// Read buffer everywhere.
const READ_BUF: usize = 1 << 20;
const MIB: f64 = (1 << 20) as f64;

#[derive(Clone, Copy)]
enum Transport {
    Quic,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Quic => "QUIC",
            Transport::Tcp => "TCP+Noise+Yamux",
        }
    }

    fn listen_addr(self) -> &'static str {
        match self {
            Transport::Quic => "/ip4/127.0.0.1/udp/0/quic-v1",
            Transport::Tcp => "/ip4/127.0.0.1/tcp/0",
        }
    }

    /// Whether `addr` goes over this transport.
    fn carries(self, addr: &Multiaddr) -> bool {
        let s = addr.to_string();
        match self {
            Transport::Quic => s.contains("/udp/") && s.contains("/quic-v1"),
            Transport::Tcp => s.contains("/tcp/"),
        }
    }
}

fn main() -> BenchResult<()> {
    let bytes = match std::env::var("WEFT_BENCH_BYTES") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(
                    format!("WEFT_BENCH_BYTES must be a positive integer, got {v:?}").into(),
                )
            }
        },
        Err(_) => DEFAULT_BYTES,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "weft-net transport benchmark: loopback 127.0.0.1, {} worker threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    println!("\nconnection setup (dial -> connected and identified), {DIAL_ITERATIONS} dials after 1 warm-up:");
    for transport in [Transport::Quic, Transport::Tcp] {
        let mut times = runtime.block_on(setup_times(transport))?;
        times.sort();
        println!(
            "  {:<16} median {:6.2} ms   p90 {:6.2} ms   (min {:.2}, max {:.2})",
            transport.name(),
            ms(median(&times)),
            ms(percentile(&times, 0.9)),
            ms(times[0]),
            ms(times[times.len() - 1]),
        );
    }

    println!(
        "\nsingle-stream throughput, {:.0} MiB per run:",
        bytes as f64 / MIB
    );
    let elapsed = runtime.block_on(raw_tcp(bytes))?;
    let raw = rate(bytes, elapsed);
    let label = format!("raw TCP ({} KiB writes)", RAW_WRITE >> 10);
    println!(
        "  {label:<40} {raw:6.0} MiB/s  ({:.2} s)",
        elapsed.as_secs_f64()
    );
    for transport in [Transport::Quic, Transport::Tcp] {
        let elapsed = runtime.block_on(stream_throughput(transport, bytes))?;
        let mibs = rate(bytes, elapsed);
        let label = format!(
            "{} stream ({} KiB writes)",
            transport.name(),
            LIBP2P_WRITE >> 10
        );
        println!(
            "  {label:<40} {mibs:6.0} MiB/s  ({:.2} s) = {:.2}x raw TCP",
            elapsed.as_secs_f64(),
            mibs / raw
        );
    }
    Ok(())
}

/// A node listening on one address of `transport`, and that address.
async fn node(transport: Transport) -> BenchResult<(Network, Multiaddr)> {
    let mut registry = Registry::default();
    let mut config = Config::loopback(Identity::generate(), "bench");
    config.listen = vec![transport.listen_addr().parse()?];
    let net = weft_net::start(config, &mut registry).await?;
    let addr = net
        .handle()
        .listen_addrs()
        .await?
        .into_iter()
        .find(|a| transport.carries(a))
        .ok_or("the node reported no listen address for the transport")?;
    Ok((net, addr))
}

/// Fails unless our connection to `peer` uses `transport`.
async fn check_transport(
    handle: &NetworkHandle,
    peer: PeerId,
    transport: Transport,
) -> BenchResult<()> {
    let peers = handle.peers().await?;
    let info = peers
        .iter()
        .find(|p| p.peer_id == peer)
        .ok_or("dialed peer is not connected")?;
    match info.addrs.first() {
        Some(addr) if transport.carries(addr) => Ok(()),
        other => Err(format!("expected a {} connection, got {other:?}", transport.name()).into()),
    }
}

/// Dial times from fresh dialer nodes to one listener; the first is dropped.
async fn setup_times(transport: Transport) -> BenchResult<Vec<Duration>> {
    let (server, addr) = node(transport).await?;
    let mut times = Vec::with_capacity(DIAL_ITERATIONS);
    for i in 0..=DIAL_ITERATIONS {
        let (client, _) = node(transport).await?;
        let start = Instant::now();
        let peer = client.handle().dial(addr.clone()).await?;
        let elapsed = start.elapsed();
        check_transport(client.handle(), peer, transport).await?;
        if i > 0 {
            times.push(elapsed);
        }
        client.shutdown().await;
    }
    server.shutdown().await;
    Ok(times)
}

/// Time to push `bytes` through one stream between two weft-net nodes.
async fn stream_throughput(transport: Transport, bytes: u64) -> BenchResult<Duration> {
    let (server, addr) = node(transport).await?;
    let (client, _) = node(transport).await?;
    let mut incoming = server.handle().accept_streams(PROTOCOL)?;
    let peer = client.handle().dial(addr).await?;
    check_transport(client.handle(), peer, transport).await?;

    let reader = tokio::spawn(async move {
        let (_, mut stream) = incoming.next().await.ok_or("no inbound stream")?;
        let mut buf = vec![0u8; READ_BUF];
        let (mut got, mut last) = (0u64, Instant::now());
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
            last = Instant::now();
        }
        BenchResult::Ok((got, last))
    });

    let mut stream = client.handle().open_stream(peer, PROTOCOL).await?;
    let chunk = vec![0xa5u8; LIBP2P_WRITE];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    stream.close().await?;
    let (got, last) = reader.await??;
    drop(stream);
    client.shutdown().await;
    server.shutdown().await;
    if got != bytes {
        return Err(format!("{}: sent {bytes} bytes, received {got}", transport.name()).into());
    }
    Ok(last - start)
}

/// Time to push `bytes` through a plain loopback TCP connection.
async fn raw_tcp(bytes: u64) -> BenchResult<Duration> {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::{TcpListener, TcpStream},
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = vec![0u8; READ_BUF];
        let (mut got, mut last) = (0u64, Instant::now());
        loop {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
            last = Instant::now();
        }
        BenchResult::Ok((got, last))
    });

    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?; // as weft's TCP transport does
    let chunk = vec![0xa5u8; RAW_WRITE];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        socket.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    socket.shutdown().await?;
    let (got, last) = reader.await??;
    if got != bytes {
        return Err(format!("raw TCP: sent {bytes} bytes, received {got}").into());
    }
    Ok(last - start)
}

fn rate(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median of a sorted, non-empty slice.
fn median(sorted: &[Duration]) -> Duration {
    (sorted[(sorted.len() - 1) / 2] + sorted[sorted.len() / 2]) / 2
}

/// Nearest-rank percentile of a sorted, non-empty slice.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
