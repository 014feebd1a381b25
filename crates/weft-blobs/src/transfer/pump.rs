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

/// The blocking side of an outgoing pump.
pub(super) struct ChannelWriter {
    pub(super) tx: tokio::sync::mpsc::Sender<Vec<u8>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
