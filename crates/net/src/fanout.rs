//! Fan-out: the datagrams of one flush, to many addresses, in one
//! sendmmsg(2) call. A room line goes to every member, so a flush is
//! typically one GSO batch (quinn-udp's or ours: several datagrams to one
//! address, cut by the kernel) for each of dozens of addresses; sending
//! them with one system call instead of one each saves the per-call cost
//! (entry, socket lookup, copying the header in) for all but the first.
//! What it cannot save is the kernel's work per buffer sent, which is why
//! the endpoint packs lines into as few datagrams as it can.
//!
//! Linux only (sendmmsg and UDP_SEGMENT); elsewhere `UdpIo` sends one
//! transmit at a time through quinn-udp. This is the one place with
//! `unsafe` in the workspace: building the `mmsghdr` array for the call.

#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// Transmits per call: enough for a 64-member room's flush at once.
pub const MAX_BATCH: usize = 64;

/// Control-message room for one UDP_SEGMENT (a u16): CMSG_SPACE(2) is 16
/// on 64-bit Linux; 32 bytes, 8-aligned, leaves margin.
type CmsgBuf = [u64; 4];

/// Datagrams waiting for one sendmmsg call, each with its destination and,
/// for a GSO batch, its segment size. The buffers are reused from flush to
/// flush.
pub struct Batch {
    bufs: Vec<Vec<u8>>,
    dests: Vec<SockAddr>,
    segments: Vec<Option<u16>>,
    cmsgs: Vec<CmsgBuf>,
    /// Messages queued, from `sent`.
    len: usize,
    /// Messages at the front already sent by an earlier partial call.
    sent: usize,
}

impl Batch {
    /// Room for `capacity` messages per call (at most [`MAX_BATCH`]): a
    /// server wants the most, a client with one peer needs one.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_BATCH);
        Self {
            bufs: (0..capacity).map(|_| Vec::new()).collect(),
            dests: (0..capacity).map(|_| SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)))).collect(),
            segments: vec![None; capacity],
            cmsgs: vec![[0; 4]; capacity],
            len: 0,
            sent: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len == self.bufs.len()
    }

    /// Whether everything queued has gone.
    pub fn is_empty(&self) -> bool {
        self.sent == self.len
    }

    /// The buffer for the next datagram (the endpoint clears it first).
    /// Call [`push`](Self::push) once it is filled; only then does it count.
    pub fn next_buf(&mut self) -> &mut Vec<u8> {
        &mut self.bufs[self.len]
    }

    /// Queues the filled [`next_buf`](Self::next_buf) for `to`.
    pub fn push(&mut self, to: SocketAddr, segment_size: Option<usize>) {
        self.dests[self.len] = SockAddr::from(to);
        self.segments[self.len] = segment_size.and_then(|s| u16::try_from(s).ok());
        self.len += 1;
    }

    /// The destination of the first unsent message (for error reports).
    pub fn first_destination(&self) -> Option<SocketAddr> {
        (!self.is_empty()).then(|| self.dests[self.sent].as_socket()).flatten()
    }

    /// Gives up on the first unsent message (the send failed for it).
    pub fn skip_first(&mut self) {
        if !self.is_empty() {
            self.sent += 1;
        }
        self.reset_if_done();
    }

    fn reset_if_done(&mut self) {
        if self.is_empty() {
            self.len = 0;
            self.sent = 0;
        }
    }

    /// One sendmmsg call for everything not yet sent. Returns how many
    /// messages went; the error is the first message's (WouldBlock when
    /// the socket buffer is full).
    pub fn send(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let pending = self.sent..self.len;
        if pending.is_empty() {
            return Ok(0);
        }
        // Filled in here rather than kept, because they point into the
        // vectors above, which must not move while the kernel reads them.
        let mut iovs: [libc::iovec; MAX_BATCH] =
            std::array::from_fn(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
        // SAFETY: mmsghdr is plain data; all-zero is a valid empty value.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let count = pending.len();
        for (k, i) in pending.enumerate() {
            iovs[k] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: self.bufs[i].len() };
            let hdr = &mut msgs[k].msg_hdr;
            hdr.msg_name = self.dests[i].as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = self.dests[i].len();
            hdr.msg_iov = &raw mut iovs[k];
            hdr.msg_iovlen = 1;
            if let Some(segment) = self.segments[i] {
                let space = std::mem::size_of::<CmsgBuf>();
                hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
                hdr.msg_controllen = space as _;
                // SAFETY: msg_control points at `space` writable, 8-aligned
                // bytes, more than CMSG_SPACE(2), so CMSG_FIRSTHDR is
                // non-null and its data fits a u16.
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
                    hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                }
            }
        }
        // SAFETY: `msgs[..count]` point at buffers, addresses and control
        // data owned by `self` and the locals above, all alive and
        // unmoved for the duration of the call.
        let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), count as _, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.sent += n as usize;
        self.reset_if_done();
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_reaches_many_addresses_with_and_without_gso() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let receivers: Vec<_> = (0..3).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for r in &receivers {
            r.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        }
        let mut batch = Batch::new(MAX_BATCH);
        // Receiver 0: one datagram; 1: a GSO batch of 3 (100 + 100 + 50);
        // 2: one datagram again.
        let plans: [(usize, Option<usize>); 3] = [(40, None), (250, Some(100)), (7, None)];
        for (r, (len, segment)) in receivers.iter().zip(plans) {
            let buf = batch.next_buf();
            buf.clear();
            buf.extend((0..len).map(|i| i as u8));
            batch.push(r.local_addr().unwrap(), segment);
        }
        assert_eq!(batch.send(&sender).unwrap(), 3);
        assert!(batch.is_empty());
        let mut got = [0u8; 2048];
        let mut sizes = Vec::new();
        for (i, r) in receivers.iter().enumerate() {
            let expected = if i == 1 { 3 } else { 1 };
            for _ in 0..expected {
                sizes.push((i, r.recv(&mut got).unwrap()));
            }
        }
        assert_eq!(sizes, vec![(0, 40), (1, 100), (1, 100), (1, 50), (2, 7)]);
    }
}
