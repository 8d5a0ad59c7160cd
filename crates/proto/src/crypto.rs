//! The Noise handshake and packet protection, through the `snow` crate.
//!
//! Pattern `Noise_NX_25519_ChaChaPoly_BLAKE2s`: the client is anonymous (it
//! authenticates later, inside the channel, with a password), the server
//! proves its static key, and the whole exchange takes one round trip
//! (docs/PROTOCOL.md §5). After it, each direction has its own key and every
//! DATA packet is sealed with its packet number as the nonce.
//!
//! Randomness comes from a seed the endpoint passes in rather than from the
//! OS, so that a simulated run is reproducible from its seed.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::params::NoiseParams;
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver, DefaultResolver, FallbackResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{HandshakeState, StatelessTransportState};
use thiserror::Error;

use crate::packet::ConnectionId;

const NOISE_PATTERN: &str = "Noise_NX_25519_ChaChaPoly_BLAKE2s";
/// Bytes of Noise message 1 before its payload (the ephemeral key).
pub const NOISE_MSG1_OVERHEAD: usize = 32;
/// Bytes of Noise message 2 besides its payload: ephemeral key, encrypted
/// static key with its tag, and the payload's tag.
pub const NOISE_MSG2_OVERHEAD: usize = 32 + 32 + 16 + 16;

fn params() -> NoiseParams {
    // The pattern string is a constant that parses; a failure is a bug in
    // this file, caught by every test.
    NOISE_PATTERN.parse().expect("valid Noise pattern")
}

/// A server's long-term X25519 public key, shown to users in base64 (as
/// WireGuard does) so it can be compared and pinned.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("not a server key: expected 44 characters of base64 encoding 32 bytes")]
pub struct ParseKeyError;

impl FromStr for PublicKey {
    type Err = ParseKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = BASE64.decode(s.trim()).map_err(|_| ParseKeyError)?;
        Ok(Self(bytes.try_into().map_err(|_| ParseKeyError)?))
    }
}

/// A server's static key pair. The driver stores `secret` (for example in
/// the server's data directory) and passes it back on every start.
#[derive(Clone)]
pub struct ServerKey {
    pub secret: [u8; 32],
    pub public: PublicKey,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey({})", self.public)
    }
}

impl ServerKey {
    /// Generates a key pair from 32 bytes of seed (taken from the OS by the
    /// caller).
    pub fn generate(seed: [u8; 32]) -> Self {
        let builder = snow::Builder::with_resolver(params(), resolver(seed));
        // Generating a key from a working RNG cannot fail.
        let kp = builder.generate_keypair().expect("key generation");
        Self::from_secret(kp.private.try_into().expect("32-byte X25519 key")).expect("generated key is valid")
    }

    /// Rebuilds the pair from a stored secret.
    pub fn from_secret(secret: [u8; 32]) -> Option<Self> {
        let mut dh = DefaultResolver.resolve_dh(&snow::params::DHChoice::Curve25519)?;
        dh.set(&secret);
        Some(Self { secret, public: PublicKey(dh.pubkey().try_into().ok()?) })
    }
}

/// Hands snow the endpoint's seeded RNG; everything else comes from ring
/// (ChaChaPoly, about 6x faster here) or snow's pure-Rust defaults.
struct SeededResolver {
    seed: [u8; 32],
}

struct SeededRng(ChaCha20Rng);

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, _: &snow::params::DHChoice) -> Option<Box<dyn Dh>> {
        None
    }
    fn resolve_hash(&self, _: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        None
    }
    fn resolve_cipher(&self, _: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}

fn resolver(seed: [u8; 32]) -> BoxedCryptoResolver {
    let accelerated = FallbackResolver::new(Box::new(RingResolver), Box::new(DefaultResolver));
    Box::new(FallbackResolver::new(Box::new(SeededResolver { seed }), Box::new(accelerated)))
}

/// The Noise prologue binds the cleartext INITIAL fields into the handshake
/// hash, so a changed version or connection id breaks the handshake.
fn prologue(version: u32, client_cid: &ConnectionId) -> Vec<u8> {
    let mut p = b"udpchat".to_vec();
    p.extend_from_slice(&version.to_be_bytes());
    p.extend_from_slice(client_cid);
    p
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    #[error("handshake message did not authenticate")]
    Handshake,
    #[error("packet did not authenticate")]
    Decrypt,
}

/// The client's side of the handshake, between sending message 1 and
/// reading message 2.
pub struct ClientHandshake {
    state: HandshakeState,
}

impl ClientHandshake {
    /// Starts a handshake and writes message 1 (carrying `payload`) to `out`.
    pub fn start(seed: [u8; 32], version: u32, client_cid: &ConnectionId, payload: &[u8], out: &mut Vec<u8>) -> Self {
        Self::start_with(seed, None, version, client_cid, payload, out)
    }

    /// [`Self::start`], with the ephemeral key given instead of drawn from
    /// the seed when `fixed_ephemeral` is set: only the test vector of
    /// docs/PROTOCOL.md Appendix A.9 sets it.
    fn start_with(
        seed: [u8; 32],
        fixed_ephemeral: Option<&[u8; 32]>,
        version: u32,
        client_cid: &ConnectionId,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Self {
        let prologue = prologue(version, client_cid);
        let mut builder = snow::Builder::with_resolver(params(), resolver(seed));
        if let Some(e) = fixed_ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let mut state =
            builder.prologue(&prologue).and_then(|b| b.build_initiator()).expect("initiator from valid parameters");
        // snow wants room for a tag even where the payload is not encrypted.
        let mut buf = vec![0u8; NOISE_MSG1_OVERHEAD + payload.len() + 16];
        let n = state.write_message(payload, &mut buf).expect("message 1 fits");
        out.extend_from_slice(&buf[..n]);
        Self { state }
    }

    /// Reads message 2. On success returns the transport keys, the server's
    /// static key and the payload (the server's transport parameters).
    pub fn finish(self, msg2: &[u8]) -> Result<(Transport, PublicKey, Vec<u8>), CryptoError> {
        let (state, key, payload) = self.read_message2(msg2)?;
        let transport = state.into_stateless_transport_mode().map_err(|_| CryptoError::Handshake)?;
        Ok((Transport { inner: transport }, key, payload))
    }

    /// [`Self::finish`] up to the split into transport keys, so the test
    /// vector can read the handshake hash and the raw keys.
    fn read_message2(mut self, msg2: &[u8]) -> Result<(HandshakeState, PublicKey, Vec<u8>), CryptoError> {
        let mut payload = vec![0u8; msg2.len()];
        let n = self.state.read_message(msg2, &mut payload).map_err(|_| CryptoError::Handshake)?;
        payload.truncate(n);
        let key = self
            .state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .map(PublicKey)
            .ok_or(CryptoError::Handshake)?;
        Ok((self.state, key, payload))
    }
}

/// The server's side: reads message 1 and writes message 2 in one step,
/// since NX gives the responder nothing to wait for.
pub struct ServerHandshake;

impl ServerHandshake {
    /// Returns the client's payload, message 2 and the transport keys.
    /// `payload` is built by `make_payload` from the client's payload.
    pub fn respond(
        key: &ServerKey,
        seed: [u8; 32],
        version: u32,
        client_cid: &ConnectionId,
        msg1: &[u8],
        make_payload: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<(Vec<u8>, Transport), CryptoError> {
        let (msg2, state) = Self::respond_with(key, seed, None, version, client_cid, msg1, make_payload)?;
        let transport = state.into_stateless_transport_mode().map_err(|_| CryptoError::Handshake)?;
        Ok((msg2, Transport { inner: transport }))
    }

    /// [`Self::respond`] up to the split into transport keys, with the
    /// ephemeral key given instead of drawn from the seed when
    /// `fixed_ephemeral` is set (only the test vector, Appendix A.9).
    fn respond_with(
        key: &ServerKey,
        seed: [u8; 32],
        fixed_ephemeral: Option<&[u8; 32]>,
        version: u32,
        client_cid: &ConnectionId,
        msg1: &[u8],
        make_payload: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<(Vec<u8>, HandshakeState), CryptoError> {
        let prologue = prologue(version, client_cid);
        let mut builder = snow::Builder::with_resolver(params(), resolver(seed));
        if let Some(e) = fixed_ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let mut state = builder
            .local_private_key(&key.secret)
            .and_then(|b| b.prologue(&prologue))
            .and_then(|b| b.build_responder())
            .map_err(|_| CryptoError::Handshake)?;
        let mut client_payload = vec![0u8; msg1.len()];
        let n = state.read_message(msg1, &mut client_payload).map_err(|_| CryptoError::Handshake)?;
        let payload = make_payload(&client_payload[..n]).ok_or(CryptoError::Handshake)?;
        let mut msg2 = vec![0u8; NOISE_MSG2_OVERHEAD + payload.len() + 16];
        let n = state.write_message(&payload, &mut msg2).map_err(|_| CryptoError::Handshake)?;
        msg2.truncate(n);
        Ok((msg2, state))
    }
}

/// Per-session packet protection: ChaCha20-Poly1305 with the packet number
/// as the nonce, one key per direction.
pub struct Transport {
    inner: StatelessTransportState,
}

impl Transport {
    /// Seals `plaintext` and appends the ciphertext (plaintext + 16-byte
    /// tag) to `out`.
    pub fn seal(&self, packet_number: u64, plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + plaintext.len() + crate::packet::TAG_LEN, 0);
        // Fails only for payloads over 65535 bytes, which we never build.
        let n =
            self.inner.write_message(packet_number, plaintext, &mut out[start..]).expect("payload within Noise limits");
        out.truncate(start + n);
    }

    /// Opens `ciphertext` into `out` (cleared first).
    pub fn open(&self, packet_number: u64, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        out.clear();
        out.resize(ciphertext.len(), 0);
        let n = self.inner.read_message(packet_number, ciphertext, out).map_err(|_| CryptoError::Decrypt)?;
        out.truncate(n);
        Ok(())
    }
}

#[cfg(test)]
mod handshake_vector;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_transport() {
        let key = ServerKey::generate([1; 32]);
        let cid = [9; 8];
        let mut msg1 = Vec::new();
        let client = ClientHandshake::start([2; 32], 1, &cid, b"hello", &mut msg1);
        assert_eq!(msg1.len(), NOISE_MSG1_OVERHEAD + 5);
        let (msg2, server_t) = ServerHandshake::respond(&key, [3; 32], 1, &cid, &msg1, |p| {
            assert_eq!(p, b"hello");
            Some(b"params".to_vec())
        })
        .unwrap();
        assert_eq!(msg2.len(), NOISE_MSG2_OVERHEAD + 6);
        let (client_t, server_key, payload) = client.finish(&msg2).unwrap();
        assert_eq!(server_key, key.public);
        assert_eq!(payload, b"params");

        let mut sealed = Vec::new();
        client_t.seal(7, b"chat line", &mut sealed);
        let mut opened = Vec::new();
        server_t.open(7, &sealed, &mut opened).unwrap();
        assert_eq!(opened, b"chat line");
        // Wrong nonce, or the same direction's key, fails.
        assert!(server_t.open(8, &sealed, &mut opened).is_err());
        assert!(client_t.open(7, &sealed, &mut opened).is_err());
    }

    #[test]
    fn prologue_mismatch_fails() {
        let key = ServerKey::generate([1; 32]);
        let mut msg1 = Vec::new();
        let _client = ClientHandshake::start([2; 32], 1, &[9; 8], b"", &mut msg1);
        // Message 1 carries no authentication, so the mismatch shows when
        // the client reads message 2.
        let mut msg1b = Vec::new();
        let client = ClientHandshake::start([2; 32], 1, &[8; 8], b"", &mut msg1b);
        let (msg2, _) = ServerHandshake::respond(&key, [3; 32], 1, &[9; 8], &msg1b, |_| Some(vec![])).unwrap();
        assert_eq!(client.finish(&msg2).err(), Some(CryptoError::Handshake));
    }

    #[test]
    fn key_text_round_trip() {
        let key = ServerKey::generate([5; 32]);
        let text = key.public.to_string();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<PublicKey>(), Ok(key.public));
        assert!("not a key".parse::<PublicKey>().is_err());
        assert_eq!(ServerKey::from_secret(key.secret).unwrap().public, key.public);
    }
}
