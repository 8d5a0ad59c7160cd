//! The handshake test vector of docs/PROTOCOL.md Appendix A.9, checked
//! against the real handshake code so the spec and the code cannot drift.
//!
//! The private keys are fixed patterns; everything else (message 1,
//! message 2, the handshake hash and the two session keys) is what
//! `Noise_NX_25519_ChaChaPoly_BLAKE2s` computes from them, and the values
//! below are copied into the spec byte for byte. The session keys are also
//! checked against an independent ChaCha20-Poly1305 (ring) to pin down
//! which one protects which direction (§5, "Packet protection").

use std::time::Duration;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use snow::HandshakeState;

use super::{ClientHandshake, PublicKey, ServerHandshake, ServerKey, Transport};
use crate::params::TransportParams;
use crate::reset::ResetKey;

/// `first, first + 1, …, first + 31`: the fixed private keys.
fn pattern(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first + i as u8)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Joins the spec's space-separated hex lines.
fn unspaced(text: &str) -> String {
    text.split_whitespace().collect()
}

const CLIENT_CID: [u8; 8] = [0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8];
const SERVER_CID: [u8; 8] = [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8];

/// Seals like a DATA packet (§5): nonce = 4 zero bytes || pn little-endian.
fn seal_with(key: &[u8; 32], pn: u64, plaintext: &[u8]) -> Vec<u8> {
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).unwrap());
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&pn.to_le_bytes());
    let mut out = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut out).unwrap();
    out
}

fn sealed_by(transport: &Transport, pn: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    transport.seal(pn, plaintext, &mut out);
    out
}

// The values of docs/PROTOCOL.md Appendix A.9, as printed there.
const SERVER_STATIC_PUBLIC: &str = "8f 40 c5 ad b6 8f 25 62 4a e5 b2 14 ea 76 7a 6e
    c9 4d 82 9d 3d 7b 5e 1a d1 ba 6f 3e 21 38 28 5f";
const MESSAGE_1: &str = "35 80 72 d6 36 58 80 d1 ae ea 32 9a df 91 21 38
    38 51 ed 21 a2 8e 3b 75 e9 65 d0 d2 cd 16 62 54
    01 04 80 00 75 30 02 04 80 10 00 00";
const MESSAGE_2: &str = "79 a6 31 ee de 1b f9 c9 8f 12 03 2c de ad d0 e7
    a0 79 39 8f c7 86 b8 8c c8 46 ec 89 af 85 a5 1a
    4d f2 1c 6d 51 74 24 c5 fc 47 33 c2 ed 66 42 2f
    2c d3 0b fa 2f b8 28 21 6d 7e 93 02 68 64 6b 37
    b0 b3 8e 56 95 fb 25 7c d2 c6 29 3b 89 8c 72 b5
    c5 4a 2b 25 f3 8a f9 58 7c d1 d8 43 af 3b 7e f6
    ed d2 ae 90 33 b7 51 99 3a fb 6a 54 ab 73 a1 b0
    37 3b 9b 04 65 32 ad 43 95 cb 7a d0 63 14 18 e5
    7a 02 37 18 c3 ac 0b 2a";
const HANDSHAKE_HASH: &str = "7a c9 4d bf 15 6f cb 43 87 93 9e d0 b4 3c 5a 4b
    38 15 7b 01 f6 aa 5c 52 9c 59 fe dc 97 93 a9 42";
const K1: &str = "9e 64 9b 93 35 4e 7e ac 41 8a 44 9e 4c e4 97 ed
    62 66 be a6 60 6e c5 d6 4a c9 2e fb e6 3b 12 63";
const K2: &str = "57 f7 23 20 53 6f 3c 7f 40 f5 e1 ec 31 58 f2 6a
    ea a9 d2 3f 55 c4 46 bc 8c d7 65 66 86 fc f9 37";
const FIRST_DATA_CIPHERTEXT: &str = "95 e7 da e0 63 3b 93 66 bc 37 e6 6b 4a 96 e7 2d e4";

/// The handshake of A.9, run by the real code up to the split.
struct Run {
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    server_key: PublicKey,
    client: HandshakeState,
    server: HandshakeState,
}

fn run() -> Run {
    let server_static = ServerKey::from_secret(pattern(0x00)).unwrap();
    let client_params = TransportParams {
        idle_timeout: Duration::from_secs(30),
        initial_max_data: 1 << 20,
        connection_id: None,
        reset_token: None,
    };
    let mut payload1 = Vec::new();
    client_params.encode(&mut payload1);
    // The server's parameters carry the server cid and the reset token
    // that A.8 derives from the same server key.
    let server_params = TransportParams {
        connection_id: Some(SERVER_CID),
        reset_token: Some(ResetKey::new(&server_static).token(&SERVER_CID)),
        ..client_params.clone()
    };
    let mut payload2 = Vec::new();
    server_params.encode(&mut payload2);
    assert_eq!(hex(&payload1), "010480007530020480100000");
    assert_eq!(hex(&payload2[payload1.len()..]), "0308a1a2a3a4a5a6a7a8041006b3089d6cdfefe4b53714ce5036e0f5");

    // The seeds do not matter: the fixed ephemeral keys replace the only
    // random values of the handshake.
    let mut msg1 = Vec::new();
    let client = ClientHandshake::start_with([7; 32], Some(&pattern(0x20)), 1, &CLIENT_CID, &payload1, &mut msg1);
    let (msg2, server) =
        ServerHandshake::respond_with(&server_static, [9; 32], Some(&pattern(0x40)), 1, &CLIENT_CID, &msg1, |p| {
            assert_eq!(p, payload1);
            Some(payload2.clone())
        })
        .unwrap();
    let (client, server_key, got_payload2) = client.read_message2(&msg2).unwrap();
    assert_eq!(got_payload2, payload2);
    Run { msg1, msg2, server_key, client, server }
}

#[test]
fn appendix_a9_handshake_vector() {
    let server_static = ServerKey::from_secret(pattern(0x00)).unwrap();
    assert_eq!(hex(&server_static.public.0), unspaced(SERVER_STATIC_PUBLIC));
    let Run { msg1, msg2, server_key, mut client, mut server } = run();
    assert_eq!(hex(&msg1), unspaced(MESSAGE_1));
    assert_eq!(hex(&msg2), unspaced(MESSAGE_2));
    assert_eq!(server_key, server_static.public, "the client learns the server's static key");
    assert_eq!(hex(client.get_handshake_hash()), unspaced(HANDSHAKE_HASH));
    assert_eq!(hex(server.get_handshake_hash()), unspaced(HANDSHAKE_HASH));
    let (k1, k2) = client.dangerously_get_raw_split();
    assert_eq!((hex(&k1), hex(&k2)), (unspaced(K1), unspaced(K2)));
    assert_eq!(server.dangerously_get_raw_split(), (k1, k2));
}

/// k1 seals client → server packets and k2 server → client ones, with the
/// nonce of §5: what the real `Transport`s do after the same handshake.
#[test]
fn appendix_a9_keys_protect_the_directions_the_spec_says() {
    let Run { client, server, .. } = run();
    let client = Transport { inner: client.into_stateless_transport_mode().unwrap() };
    let server = Transport { inner: server.into_stateless_transport_mode().unwrap() };
    let k1: [u8; 32] = parse_hex(K1);
    let k2: [u8; 32] = parse_hex(K2);
    // The client's first DATA packet: packet number 0, one PING frame.
    let ping = [0x01];
    assert_eq!(hex(&sealed_by(&client, 0, &ping)), unspaced(FIRST_DATA_CIPHERTEXT));
    assert_eq!(sealed_by(&client, 0, &ping), seal_with(&k1, 0, &ping));
    assert_eq!(sealed_by(&server, 0, &ping), seal_with(&k2, 0, &ping));
    assert_eq!(sealed_by(&server, 7, b"hello"), seal_with(&k2, 7, b"hello"));
}

fn parse_hex<const N: usize>(text: &str) -> [u8; N] {
    let text = unspaced(text);
    std::array::from_fn(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
}
