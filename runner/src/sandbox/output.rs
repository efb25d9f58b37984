//! Captured stdout/stderr with a size cap.
//!
//! Unlike wasmtime's `MemoryOutputPipe`, going over the cap does not trap the
//! guest: the first `cap` bytes are kept, the rest is counted and dropped, so
//! a chatty plugin still gets its verdict and the report says what was cut.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Debug, Clone)]
pub struct CappedPipe {
    inner: Arc<Mutex<Captured>>,
    cap: usize,
}

#[derive(Debug, Default, Clone)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// Bytes written past the cap and dropped.
    pub dropped: u64,
}

impl CappedPipe {
    pub fn new(cap: usize) -> Self {
        CappedPipe {
            inner: Arc::default(),
            cap,
        }
    }

    pub fn snapshot(&self) -> Captured {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn write(&self, buf: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(inner.bytes.len());
        let keep = room.min(buf.len());
        inner.bytes.extend_from_slice(&buf[..keep]);
        inner.dropped += (buf.len() - keep) as u64;
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_cap_bytes_and_counts_the_rest() {
        let pipe = CappedPipe::new(4);
        pipe.write(b"abc");
        pipe.write(b"defg");
        let got = pipe.snapshot();
        assert_eq!(got.bytes, b"abcd");
        assert_eq!(got.dropped, 3);
    }
}
