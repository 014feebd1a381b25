//! Bridges between the blocking bao coders and async libp2p streams: a
//! bounded channel in each direction, moved by an async task with an idle
//! timeout. When the peer stalls or the request is dropped, the channel
//! closes and the blocking thread returns instead of waiting forever.

use std::{
    io::{self, Read, Write},
    time::Duration,
};

use weft_net::Stream;

/// Size of one read from a stream.
const READ_BUFFER: usize = 64 * 1024;

/// Chunks in flight between a blocking coder and its stream.
pub(super) const PUMP_CHUNKS: usize = 8;
/// A peer that neither sends nor reads for this long is given up on.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes an outgoing pump hands over at a time.
const WRITE_CHUNK: usize = 256 * 1024;

/// The blocking side of an outgoing pump: gathers writes into chunks of
/// [`WRITE_CHUNK`] bytes and hands each chunk over whole, so the bytes are
/// copied once on their way to the stream, not again per hand-over.
pub(super) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(super) fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(WRITE_CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(WRITE_CHUNK));
        self.tx
            .blocking_send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.buf.is_empty() && self.buf.len() + data.len() > WRITE_CHUNK {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    /// Hands over what is gathered.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

/// The blocking side of an incoming pump: reads what the async task
/// received; an error or the end of the channel ends the stream.
pub(super) struct ChannelReader {
    pub(super) rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Moves bytes from `stream` into a channel for a blocking reader, with an
/// idle timeout; ends when the stream ends or the reader goes away.
pub(super) async fn pump_in(
    mut stream: Stream,
    tx: tokio::sync::mpsc::Sender<io::Result<Vec<u8>>>,
) {
    use futures::AsyncReadExt;
    // One read buffer for the whole stream; each read is sent on as a copy
    // of just the bytes received (a fresh zeroed buffer per read costs
    // more in page faults than the copy).
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(_) => {
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "peer stopped sending",
                    )))
                    .await;
                return;
            }
        };
        if tx.send(Ok(buf[..n].to_vec())).await.is_err() {
            return;
        }
    }
}

/// Aborts a task when dropped (a reader pump, a peer-exchange loop).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
