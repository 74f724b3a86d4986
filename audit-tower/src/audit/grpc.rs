//! What the layer reads of a gRPC call: the service and method in its path, and how many
//! length-prefixed messages went each way.

use audit_core::sync::LockExt;
use std::sync::{Arc, Mutex};

/// Counts gRPC messages in a stream of body chunks: each message is a 1-byte flag, a 4-byte
/// big-endian length, then that many bytes, and may be split across chunks anywhere.
#[derive(Debug, Default, Clone)]
pub(crate) struct Messages {
    header: [u8; 5],
    have: usize,
    remaining: u64,
    count: u64,
}

impl Messages {
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let take =
                    usize::try_from(self.remaining).map_or(chunk.len(), |r| r.min(chunk.len()));
                chunk = &chunk[take..];
                self.remaining -= take as u64;
                continue;
            }
            let take = (5 - self.have).min(chunk.len());
            self.header[self.have..self.have + take].copy_from_slice(&chunk[..take]);
            self.have += take;
            chunk = &chunk[take..];
            if self.have == 5 {
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.remaining = u64::from(len);
                self.have = 0;
                self.count += 1;
            }
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

/// A request's message count, shared between its body (which reads) and its record.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedMessages(Arc<Mutex<Messages>>);

impl SharedMessages {
    pub(crate) fn feed(&self, chunk: &[u8]) {
        self.0.lock_ignore_poison().feed(chunk);
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.lock_ignore_poison().count()
    }
}

/// `/<service>/<method>` → (service, method); `None` for any other shape.
pub(crate) fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (plain(service) && plain(method)).then_some((service, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn messages_are_counted_however_the_chunks_fall() {
        let stream: Vec<u8> = [frame(3), frame(0), frame(70_000), frame(1)].concat();
        for split in [1, 2, 4, 5, 6, 7, 1000, stream.len()] {
            let mut m = Messages::default();
            for chunk in stream.chunks(split) {
                m.feed(chunk);
            }
            assert_eq!(m.count(), 4, "chunks of {split}");
        }
        let mut partial = Messages::default();
        partial.feed(&frame(10)[..3]);
        assert_eq!(
            partial.count(),
            0,
            "a header not yet whole is not a message"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            service_and_method("/demo.v1.Greeter/SayHello"),
            Some(("demo.v1.Greeter", "SayHello"))
        );
        for bad in ["/", "/a", "/a/", "//b", "/a/b/c", "/a b/c", "x/y"] {
            assert_eq!(service_and_method(bad), None, "{bad}");
        }
    }
}
