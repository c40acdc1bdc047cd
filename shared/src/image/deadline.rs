//! Stopping a decode: the time one photo may take, and a caller who no longer waits.
//!
//! The decoders have no deadline or cancel hook, but JPEG, PNG and WebP all pull their input
//! through `Read`/`BufRead`: [`Watched`] hands them the photo's bytes and checks the
//! [`Stop`] every few KiB served (every call for a reader taking big slices, every 256 calls
//! for jpeg-decoder's byte-at-a-time reads); once it has fired, the read fails, the decoder
//! returns that I/O error at once, and [`Stop::fired`] says why. A decoder that does much
//! work for few bytes read is bounded otherwise: a JPEG's scans by the scan budget
//! (`metadata.rs`), everything by the pixel and memory limits. libheif decodes from memory,
//! with no hook: HEIC and AVIF are bounded by their pixels alone.

use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes served between two checks of the [`Stop`], whatever the reads' sizes.
const CHECK_EVERY_BYTES: usize = 4 << 10;
/// Reads between two checks, for decoders that read a byte at a time.
const CHECK_EVERY_READS: u32 = 256;
/// The most one `fill_buf` hands over, so that a decoder consuming big slices still comes
/// back to the reader (and the check) at least this often.
const MAX_SLICE: usize = 64 << 10;

/// When a decode must stop: past its deadline, or once nobody waits for its result.
#[derive(Debug, Clone)]
pub struct Stop {
    deadline: Option<(Instant, Duration)>,
    abandoned: Option<Arc<AtomicBool>>,
}

/// Why a [`Stop`] fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The decode ran past the time a photo may take (the limit it was given).
    Deadline(Duration),
    /// The caller stopped waiting.
    Abandoned,
}

impl Stop {
    /// A stop that never fires (estimates, tools, tests).
    pub fn never() -> Self {
        Self {
            deadline: None,
            abandoned: None,
        }
    }

    /// Fires `limit` from now, or as soon as `abandoned` is set.
    pub fn after(limit: Duration, abandoned: Arc<AtomicBool>) -> Self {
        Self {
            deadline: Some((Instant::now() + limit, limit)),
            abandoned: Some(abandoned),
        }
    }

    /// Why the decode must stop now, if it must.
    pub fn fired(&self) -> Option<Fired> {
        if self.abandoned.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Some(Fired::Abandoned);
        }
        match self.deadline {
            Some((at, limit)) if Instant::now() >= at => Some(Fired::Deadline(limit)),
            _ => None,
        }
    }
}

/// The photo's bytes as a reader that fails once its [`Stop`] has fired.
pub(super) struct Watched<'a> {
    bytes: &'a [u8],
    position: usize,
    stop: &'a Stop,
    bytes_since_check: usize,
    reads_since_check: u32,
}

impl<'a> Watched<'a> {
    pub(super) fn new(bytes: &'a [u8], stop: &'a Stop) -> Self {
        Self {
            bytes,
            position: 0,
            stop,
            bytes_since_check: 0,
            reads_since_check: 0,
        }
    }

    /// Counts `served` bytes and one read, and checks the stop when either is due.
    fn checked(&mut self, served: usize) -> io::Result<()> {
        self.bytes_since_check += served;
        self.reads_since_check += 1;
        if self.bytes_since_check < CHECK_EVERY_BYTES && self.reads_since_check < CHECK_EVERY_READS {
            return Ok(());
        }
        self.bytes_since_check = 0;
        self.reads_since_check = 0;
        match self.stop.fired() {
            None => Ok(()),
            Some(why) => Err(io::Error::other(format!("decode stopped: {why:?}"))),
        }
    }

    fn remaining(&self) -> &'a [u8] {
        self.bytes.get(self.position..).unwrap_or_default()
    }
}

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.remaining().len());
        self.checked(n)?;
        buf[..n].copy_from_slice(&self.remaining()[..n]);
        self.position += n;
        Ok(n)
    }
}

impl BufRead for Watched<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let remaining = self.remaining();
        let n = remaining.len().min(MAX_SLICE);
        self.checked(n)?;
        Ok(&remaining[..n])
    }

    fn consume(&mut self, amount: usize) {
        self.position = self.position.saturating_add(amount).min(self.bytes.len());
    }
}

impl Seek for Watched<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.bytes.len() as i128;
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(delta) => len + i128::from(delta),
            SeekFrom::Current(delta) => self.position as i128 + i128::from(delta),
        };
        if target < 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"));
        }
        // Past the end is allowed, as for a file: reads there return 0 bytes.
        self.position = usize::try_from(target).unwrap_or(usize::MAX);
        Ok(target as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fail_once_the_stop_fires_and_not_before() {
        let bytes = vec![7u8; 1 << 20];
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = Stop::after(Duration::from_secs(3600), abandoned.clone());
        let mut reader = Watched::new(&bytes, &stop);
        let mut buf = [0u8; 1000];
        for _ in 0..100 {
            assert_eq!(reader.read(&mut buf).unwrap(), 1000);
        }
        abandoned.store(true, Ordering::Relaxed);
        assert_eq!(stop.fired(), Some(Fired::Abandoned));
        // Within CHECK_EVERY_BYTES of reading, the next read fails.
        let failed = (0..10).any(|_| reader.read(&mut buf).is_err());
        assert!(failed, "reads went on after the stop fired");
        assert!(reader.fill_buf().is_err());
    }

    #[test]
    fn a_deadline_fires_by_itself_and_byte_reads_see_it() {
        let bytes = vec![1u8; 4096];
        let stop = Stop::after(Duration::ZERO, Arc::default());
        assert_eq!(stop.fired(), Some(Fired::Deadline(Duration::ZERO)));
        let mut reader = Watched::new(&bytes, &stop);
        let mut byte = [0u8; 1];
        let served = (0..1000).take_while(|_| reader.read(&mut byte).is_ok()).count();
        assert!(
            served < CHECK_EVERY_READS as usize,
            "{served} byte reads before the check"
        );
        assert_eq!(Stop::never().fired(), None);
    }

    #[test]
    fn it_reads_and_seeks_like_a_cursor() {
        let bytes: Vec<u8> = (0..=255).collect();
        let stop = Stop::never();
        let mut reader = Watched::new(&bytes, &stop);
        assert_eq!(reader.seek(SeekFrom::End(-6)).unwrap(), 250);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, [250, 251, 252, 253, 254, 255]);
        reader.seek(SeekFrom::Start(10)).unwrap();
        assert_eq!(reader.fill_buf().unwrap()[0], 10);
        reader.consume(5);
        assert_eq!(reader.stream_position().unwrap(), 15);
        assert!(reader.seek(SeekFrom::Current(-100)).is_err());
        assert_eq!(reader.seek(SeekFrom::Start(1000)).unwrap(), 1000);
        assert_eq!(reader.read(&mut [0u8; 4]).unwrap(), 0);
    }
}
